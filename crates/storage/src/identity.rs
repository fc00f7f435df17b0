//! This database's identity: tree `meta`, key `node_id` -> the name of the node that owns the data
//! directory, made once and kept across restarts, so that a restarted cluster node is the same node.

use crate::store::Store;
use crate::Result;

const NODE_ID: &[u8] = b"node_id";

impl Store {
    /// The node name kept in this database, made from `prefix` and a fresh id (and made durable) the
    /// first time it is asked for. Two callers racing on a fresh database get the same name.
    pub async fn node_id(&self, prefix: &str) -> Result<String> {
        let prefix = prefix.to_owned();
        let (id, made) = self.run(move |s| s.node_id_or_make(&prefix)).await?;
        if made {
            self.sync().await?;
        }
        Ok(id)
    }

    /// The kept node name, or a fresh one now kept (`true`: made by this call).
    fn node_id_or_make(&self, prefix: &str) -> Result<(String, bool)> {
        let text = |id: &[u8]| String::from_utf8_lossy(id).into_owned();
        if let Some(id) = self.inner.meta.get(NODE_ID)? {
            return Ok((text(&id), false));
        }
        let fresh = format!("{prefix}-{}", uuid::Uuid::now_v7());
        match self
            .inner
            .meta
            .compare_and_swap(NODE_ID, None::<&[u8]>, Some(fresh.as_bytes()))?
        {
            Ok(()) => Ok((fresh, true)),
            Err(raced) => Ok((raced.current.map_or(fresh, |id| text(&id)), false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn a_node_id_is_made_once_and_kept_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = Store::open(dir.path()).unwrap();
            let id = store.node_id("ingest").await.unwrap();
            assert_eq!(store.node_id("other").await.unwrap(), id);
            id
        };
        assert!(first.starts_with("ingest-"), "{first}");
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.node_id("ingest").await.unwrap(), first);
    }
}
