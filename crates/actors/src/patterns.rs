//! [`PatternHub`]: live pattern events for `WatchPatterns` subscribers.
//!
//! A broadcast channel with a bounded buffer: publishing never waits, so a slow subscriber can never slow
//! the analyzer (and through it ingest). A subscriber that falls more than the buffer behind learns it on its
//! next receive ([`PatternSubscription::next`] returns [`Lagged`]) and is expected to end its stream.

use std::sync::Arc;

use crate::catalog_match::ProductFinding;
use tokio::sync::broadcast;

/// One analysed CCTV batch, as its interaction is written.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternEvent {
    /// Owning organization.
    pub organization_id: String,
    /// Session of the batch.
    pub session_id: String,
    /// Camera.
    pub camera_id: String,
    /// Position of the batch in its session.
    pub batch_index: u64,
    /// First and last frame index of the batch.
    pub frame_range: (u64, u64),
    /// The interaction written for the batch.
    pub interaction_id: String,
    /// Summary of the batch's frame descriptions.
    pub summary: String,
    /// Tags of the interaction.
    pub tags: Vec<String>,
    /// Products matched in the batch.
    pub products: Vec<ProductFinding>,
    /// Capture time of the first frame, ms since the Unix epoch.
    pub timestamp_ms: i64,
}

/// The subscriber fell this many events behind and missed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged(pub u64);

/// Fan-out of pattern events. Cheap to clone.
#[derive(Clone)]
pub struct PatternHub {
    tx: broadcast::Sender<Arc<PatternEvent>>,
}

impl PatternHub {
    /// A hub whose subscribers may fall `buffer` events behind.
    pub fn new(buffer: usize) -> PatternHub {
        PatternHub {
            tx: broadcast::channel(buffer.max(1)).0,
        }
    }

    /// Publishes an event to every current subscriber; never waits.
    pub fn publish(&self, event: PatternEvent) {
        // An error only means nobody is subscribed.
        let _ = self.tx.send(Arc::new(event));
    }

    /// Subscribes to one organization's events (optionally one camera's), from now on.
    pub fn subscribe(&self, organization_id: &str, camera_id: Option<&str>) -> PatternSubscription {
        PatternSubscription {
            rx: self.tx.subscribe(),
            organization_id: organization_id.to_owned(),
            camera_id: camera_id.map(str::to_owned),
        }
    }
}

/// One subscriber's view of the hub.
pub struct PatternSubscription {
    rx: broadcast::Receiver<Arc<PatternEvent>>,
    organization_id: String,
    camera_id: Option<String>,
}

impl PatternSubscription {
    /// The next event of the subscription's organization (and camera); `Ok(None)` when the hub is gone,
    /// `Err(Lagged)` when the subscriber fell too far behind and missed events.
    pub async fn next(&mut self) -> Result<Option<Arc<PatternEvent>>, Lagged> {
        loop {
            match self.rx.recv().await {
                Ok(e) => {
                    if e.organization_id == self.organization_id
                        && self.camera_id.as_ref().is_none_or(|c| *c == e.camera_id)
                    {
                        return Ok(Some(e));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
                Err(broadcast::error::RecvError::Lagged(n)) => return Err(Lagged(n)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(org: &str, batch_index: u64) -> PatternEvent {
        PatternEvent {
            organization_id: org.into(),
            session_id: "s".into(),
            camera_id: "c".into(),
            batch_index,
            frame_range: (0, 0),
            interaction_id: "i".into(),
            summary: String::new(),
            tags: vec![],
            products: vec![],
            timestamp_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_subscriber_sees_its_organization_and_a_slow_one_learns_it_lagged() {
        let hub = PatternHub::new(2);
        let mut fast = hub.subscribe("a", None);
        let mut slow = hub.subscribe("a", None);
        hub.publish(event("b", 0));
        hub.publish(event("a", 1));
        assert_eq!(fast.next().await.unwrap().unwrap().batch_index, 1);
        // Publishing never waits for the slow subscriber; it falls behind and is told so.
        for i in 2..6 {
            hub.publish(event("a", i));
        }
        assert!(matches!(slow.next().await, Err(Lagged(_))));
    }
}
