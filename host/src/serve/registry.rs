//! The CPIs a server serves: every entry of its policy, loaded once (specs parsed, components
//! compiled), with each CPI's call limit and resource locks. Replaced whole on reload, so a call
//! runs on the set it started with.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedMutexGuard, Semaphore};

use crate::cpi::{Cpi, Loader};
use crate::policy::Policy;

/// One served CPI.
pub struct Served {
    pub cpi: Cpi,
    /// `[serve] max_in_flight_per_cpi` permits.
    pub permits: Arc<Semaphore>,
    pub locks: ResourceLocks,
}

/// The policy and its CPIs, by entry name.
pub struct Registry {
    pub policy: Policy,
    pub cpis: BTreeMap<String, Arc<Served>>,
    /// `[serve] max_in_flight` permits, over all CPIs.
    pub permits: Arc<Semaphore>,
}

impl Registry {
    /// Loads the policy at `path` and every CPI it names. All or nothing: one entry that does not
    /// load makes the whole registry fail, with every reason (a reload then keeps the old one).
    pub async fn load(path: &Path, cache_dir: Option<PathBuf>) -> Result<Registry, String> {
        let policy = Policy::load(path).map_err(|e| e.to_string())?;
        let mut loader =
            Loader::new(policy.clone(), cache_dir).map_err(|e| format!("cannot open the policy's audit log: {e}"))?;
        loader.instance_pool = true;
        let mut cpis = BTreeMap::new();
        let mut failures = Vec::new();
        for (name, grants) in &policy.plugins {
            let Some(source) = &grants.source else { continue };
            match loader.load(source).await {
                Ok(cpi) => {
                    let permits = Arc::new(Semaphore::new(policy.serve.max_in_flight_per_cpi));
                    cpis.insert(name.clone(), Arc::new(Served { cpi, permits, locks: ResourceLocks::default() }));
                }
                Err(e) => failures.push(format!("plugin `{name}` ({}): {e}", source.display())),
            }
        }
        if !failures.is_empty() {
            return Err(format!("{} does not serve: {}", path.display(), failures.join("; ")));
        }
        let permits = Arc::new(Semaphore::new(policy.serve.max_in_flight));
        Ok(Registry { policy, cpis, permits })
    }
}

/// Per-resource locks of one CPI: calls naming the same resource run one after the other, so two
/// concurrent `create_volume x` cannot both see `x` missing.
#[derive(Default)]
pub struct ResourceLocks {
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held resource lock; the entry goes when its last holder or waiter does.
pub struct ResourceGuard<'a> {
    locks: &'a ResourceLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl ResourceLocks {
    pub async fn lock(&self, key: &str) -> ResourceGuard<'_> {
        let mutex = {
            let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            held.entry(key.to_string()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        ResourceGuard { locks: self, key: key.to_string(), guard: Some(guard) }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().map_or(0, |h| h.len())
    }
}

impl Drop for ResourceGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut held = self.locks.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only the map holds it now: nobody holds or waits for this resource.
        if held.get(&self.key).is_some_and(|m| Arc::strong_count(m) == 1) {
            held.remove(&self.key);
        }
    }
}

/// The resource a call names, for its lock: the first of the parameters that name one.
pub fn resource_of(params: &crate::contract::params::Params) -> Option<String> {
    ["name", "vm", "disk", "network", "container"]
        .iter()
        .find_map(|key| params.get(*key).and_then(|v| v.as_str()).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_resource_lock_serializes_and_cleans_up() {
        let locks = Arc::new(ResourceLocks::default());
        let first = locks.lock("x").await;
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _second = locks.lock("x").await;
                let _ = tx.send(());
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(rx.try_recv().is_err(), "the second caller waits");
        let other = locks.lock("y").await;
        drop(other);
        drop(first);
        waiter.await.expect("waiter");
        assert_eq!(locks.len(), 0, "no entry stays behind");
    }
}
