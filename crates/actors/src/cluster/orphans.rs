//! The ingest role's watch over the sessions of the cluster: a heartbeat saying this node is alive, the
//! resumption of the sessions the camera bucket says this node serves (after a restart), and the
//! adoption of the sessions of ingest nodes that stopped saying they are alive.

use std::time::Duration;

use crate::cluster::Bus;
use crate::journal::{node_key, CameraSessions, LiveNodes};
use crate::metrics_names as m;
use crate::session_ingress::SessionIngress;
use crate::PipelineError;

/// How long a resumed or adopted session's in-flight descriptions are waited for before the watch goes
/// on (the session actor finishes them all the same).
const DRAIN_WAIT: Duration = Duration::from_secs(60);

/// On an ingest node: says every third of `orphan_after_ms` that this node is alive (its lease on the
/// sessions it serves), and on each beat
/// - resumes the sessions whose camera entry names this node but that do not run here (the node
///   restarted: its id is kept in its data directory, so its entries are still its own);
/// - once this node has been up for `orphan_after_ms`, adopts the sessions of ingest nodes whose lease
///   lapsed: each such camera entry is moved to this node by compare-and-set (so one node takes it),
///   and its session resumed here from the journal — acknowledged frames described, descriptions
///   batched and handed on. The session stays open: its camera continues it on whichever ingest node it
///   reaches within its hour.
///
/// Runs until its task is aborted (at shutdown).
pub(crate) async fn watch_orphans(sessions: SessionIngress, bus: Bus) {
    let (Some(nodes), Some(cameras)) = (bus.nodes().cloned(), bus.cameras().cloned()) else {
        return;
    };
    let after = Duration::from_millis(bus.settings().orphan_after_ms);
    let beat = after / 3;
    // The heartbeat never waits for a sweep (resuming sessions may take a while).
    let heartbeat = async {
        loop {
            if let Err(e) = nodes.heartbeat(bus.node()).await {
                tracing::warn!(error = %e, "could not say this node is alive");
            }
            tokio::time::sleep(beat).await;
        }
    };
    // Nodes that started with this one get a full period to say they are alive.
    let adopt_from = tokio::time::Instant::now() + after;
    let sweeps = async {
        loop {
            let adopt = tokio::time::Instant::now() >= adopt_from;
            if let Err(e) = sweep(&sessions, &bus, &nodes, &cameras, adopt).await {
                tracing::warn!(error = %e, "session sweep failed; trying again");
            }
            tokio::time::sleep(beat).await;
        }
    };
    futures::future::join(heartbeat, sweeps).await;
}

/// One pass of [`watch_orphans`].
async fn sweep(
    sessions: &SessionIngress,
    bus: &Bus,
    nodes: &LiveNodes,
    cameras: &CameraSessions,
    adopt: bool,
) -> Result<(), PipelineError> {
    let alive = nodes.alive().await?;
    if !alive.contains(&node_key(bus.node())) {
        // This node's own heartbeat is not visible: NATS is struggling, and judging others now would
        // take sessions from live nodes.
        return Ok(());
    }
    let running = sessions.running().await?;
    for entry in cameras.entries().await? {
        let (org, camera) = (&entry.organization_id, &entry.camera_id);
        let (Some(session_id), Some(owner)) =
            (entry.current.session_id.clone(), entry.current.node.clone())
        else {
            continue;
        };
        if running.contains(&session_id) {
            continue;
        }
        if owner == bus.node() {
            if sessions.is_closed(&session_id).await? {
                continue;
            }
            match sessions.resume_owned(&session_id, DRAIN_WAIT).await {
                Ok(Some(batches)) => {
                    tracing::info!(session_id, org_id = %org, camera_id = %camera, batches, "resumed a session of this node");
                }
                Ok(None) | Err(PipelineError::Moved(_)) => {}
                Err(e) => {
                    tracing::warn!(session_id, error = %e, "could not resume a session of this node")
                }
            }
            continue;
        }
        if !adopt || alive.contains(&node_key(&owner)) {
            continue;
        }
        // One node takes it; a camera that came back to some node in the meantime changed the entry.
        if !cameras
            .replace(org, camera, &entry.current, &session_id, bus.node())
            .await?
        {
            continue;
        }
        match sessions.resume_owned(&session_id, DRAIN_WAIT).await {
            Ok(batches) => {
                metrics::counter!(m::SESSIONS_ADOPTED).increment(1);
                tracing::info!(
                    session_id,
                    org_id = %org,
                    camera_id = %camera,
                    dead_node = %owner,
                    batches = batches.unwrap_or(0),
                    "adopted the session of a dead ingest node"
                );
            }
            Err(e) => {
                // The entry names this node now: the next pass resumes it.
                tracing::warn!(session_id, dead_node = %owner, error = %e, "could not resume the session of a dead ingest node yet");
            }
        }
    }
    Ok(())
}
