//! The ingest role's watch over its peers: a heartbeat saying this node is alive, and the take-over of
//! the sessions of ingest nodes that stopped saying so.

use std::time::Duration;

use crate::cluster::Bus;
use crate::journal::{node_key, CameraSessions, LiveNodes};
use crate::metrics_names as m;
use crate::session_ingress::SessionIngress;
use crate::PipelineError;

/// On an ingest node: says every third of `orphan_after_ms` that this node is alive, and takes over the
/// sessions of ingest nodes that stopped saying so — each camera entry naming a dead node is moved to
/// this node by compare-and-set (so one node takes it), and its session is closed here: replayed from
/// the journal, its acknowledged frames described, its descriptions batched and handed on. A camera
/// that comes back later starts a new session. Runs until its task is aborted (at shutdown).
pub(crate) async fn watch_orphans(sessions: SessionIngress, bus: Bus) {
    let (Some(nodes), Some(cameras)) = (bus.nodes().cloned(), bus.cameras().cloned()) else {
        return;
    };
    let after = Duration::from_millis(bus.settings().orphan_after_ms);
    let beat = after / 3;
    // Nodes that started with this one get a full period to say they are alive.
    let mut next_sweep = tokio::time::Instant::now() + after;
    loop {
        if let Err(e) = nodes.heartbeat(bus.node()).await {
            tracing::warn!(error = %e, "could not say this node is alive");
        }
        if tokio::time::Instant::now() >= next_sweep {
            next_sweep = tokio::time::Instant::now() + beat;
            if let Err(e) = sweep_orphans(&sessions, &bus, &nodes, &cameras).await {
                tracing::warn!(error = %e, "orphan sweep failed; trying again");
            }
        }
        tokio::time::sleep(beat).await;
    }
}

/// One pass of [`watch_orphans`].
async fn sweep_orphans(
    sessions: &SessionIngress,
    bus: &Bus,
    nodes: &LiveNodes,
    cameras: &CameraSessions,
) -> Result<(), PipelineError> {
    let alive = nodes.alive().await?;
    if !alive.contains(&node_key(bus.node())) {
        // This node's own heartbeat is not visible: NATS is struggling, and judging others now would
        // take sessions from live nodes.
        return Ok(());
    }
    for entry in cameras.entries().await? {
        if entry.node == bus.node() || alive.contains(&node_key(&entry.node)) {
            continue;
        }
        let Some(session_id) = entry.current.session_id.clone() else {
            continue;
        };
        let (org, camera) = (&entry.organization_id, &entry.camera_id);
        // One node takes it; a camera that came back to some node in the meantime changed the entry.
        if !cameras
            .replace(org, camera, &entry.current, &session_id, bus.node())
            .await?
        {
            continue;
        }
        match sessions.close_session(org, &session_id).await {
            Ok(session) => {
                metrics::counter!(m::SESSIONS_ADOPTED).increment(1);
                tracing::info!(
                    session_id,
                    org_id = %org,
                    camera_id = %camera,
                    dead_node = %entry.node,
                    batches = session.counters.batches,
                    "took over the session of a dead ingest node and closed it"
                );
            }
            Err(e) => {
                tracing::warn!(session_id, dead_node = %entry.node, error = %e, "could not close the session of a dead ingest node");
            }
        }
    }
    Ok(())
}
