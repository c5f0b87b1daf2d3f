//! [`NodeResources`]: what this process may hand to actors, shared by all its pools.

use std::sync::{Arc, Mutex, MutexGuard};

use regatta_common::Resources;
use tokio::sync::Notify;

use crate::gpu_probe::nvml_gpu_count;
use crate::{ActorError, Lease, ResourceLedger, Result};

/// Values that replace what detection finds (from config, or fake GPUs in tests).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResourceOverrides {
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub gpus: Option<u32>,
}

impl ResourceOverrides {
    /// Overrides from `REGATTA_CPUS`, `REGATTA_MEMORY` (bytes) and `REGATTA_GPUS`;
    /// unset variables leave detection alone. A bad value names the variable.
    pub fn from_env() -> Result<Self> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
            match std::env::var(name) {
                Err(_) => Ok(None),
                Ok(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ActorError::BadOverride {
                        name: name.into(),
                        value: v.clone(),
                    }),
            }
        }
        Ok(Self {
            cpus: var("REGATTA_CPUS")?,
            memory: var("REGATTA_MEMORY")?,
            gpus: var("REGATTA_GPUS")?,
        })
    }
}

/// The physical ids of `gpus` devices: CUDA numbers the entries of
/// `CUDA_VISIBLE_DEVICES` 0, 1, ... in their order; without it ordinal = id.
fn gpu_ids(gpus: u32, cuda_visible_devices: &str) -> Vec<String> {
    let visible: Vec<&str> = cuda_visible_devices
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (0..gpus as usize)
        .map(|g| {
            visible
                .get(g)
                .map_or_else(|| g.to_string(), |v| v.to_string())
        })
        .collect()
}

/// The node's CPUs, memory and GPUs, leased to actors; waiting requests are woken
/// when a lease comes back.
#[derive(Debug)]
pub struct NodeResources {
    ledger: Mutex<ResourceLedger>,
    released: Notify,
    /// Each GPU ordinal's physical id, as `CUDA_VISIBLE_DEVICES` names it.
    gpu_ids: Vec<String>,
}

impl NodeResources {
    /// A node with exactly these resources (GPUs may be fake).
    pub fn new(cpus: f64, memory: u64, gpus: u32) -> Arc<Self> {
        Self::with_gpu_ids(cpus, memory, (0..gpus).map(|g| g.to_string()).collect())
    }

    /// A node whose GPU ordinals 0.. are the physical devices `gpu_ids` (what a
    /// launcher such as Ray put in `CUDA_VISIBLE_DEVICES`).
    pub fn with_gpu_ids(cpus: f64, memory: u64, gpu_ids: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            ledger: Mutex::new(ResourceLedger::new(cpus, memory, gpu_ids.len() as u32)),
            released: Notify::new(),
            gpu_ids,
        })
    }

    /// The physical ids of the GPUs, by ordinal.
    pub fn gpu_ids(&self) -> &[String] {
        &self.gpu_ids
    }

    /// The physical id of GPU `ordinal`.
    pub fn gpu_id(&self, ordinal: u32) -> String {
        self.gpu_ids
            .get(ordinal as usize)
            .cloned()
            .unwrap_or_else(|| ordinal.to_string())
    }

    /// This machine's resources: CPUs the process may use, physical memory and NVML's
    /// GPUs, each replaced by its override when one is set.
    pub fn detect(overrides: ResourceOverrides) -> Arc<Self> {
        let cpus = overrides
            .cpus
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as f64);
        let memory = overrides.memory.unwrap_or_else(physical_memory);
        let gpus = overrides.gpus.unwrap_or_else(nvml_gpu_count);
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default();
        Self::with_gpu_ids(cpus, memory, gpu_ids(gpus, &visible))
    }

    fn ledger(&self) -> MutexGuard<'_, ResourceLedger> {
        // The ledger's state stays consistent even if a holder panicked.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the node has in all.
    pub fn total(&self) -> Resources {
        self.ledger().total()
    }

    /// Fails if `request` could never be granted here, however long one waited.
    pub fn check(&self, request: Resources) -> Result<()> {
        self.ledger().check(request)
    }

    /// Grants `request`, waiting while other holders have what it needs. Fails at
    /// once if it can never fit.
    pub async fn acquire(&self, request: Resources) -> Result<Lease> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking, so a release in between is not missed.
            released.as_mut().enable();
            if let Some(lease) = self.ledger().try_acquire(request)? {
                return Ok(lease);
            }
            released.await;
        }
    }

    /// Returns a lease and wakes the requests waiting for resources.
    pub fn release(&self, lease: Lease) {
        self.ledger().release(lease);
        self.released.notify_waiters();
    }
}

/// Physical memory in bytes, from /proc/meminfo (16 GiB where it cannot be read).
fn physical_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(16 << 30, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_request_is_granted_when_a_lease_returns() {
        let node = NodeResources::new(4.0, 1 << 30, 1);
        let gpu = Resources::new(1.0, 1.0, 0).unwrap();
        let first = node.acquire(gpu).await.unwrap();
        let n2 = node.clone();
        let waiter = tokio::spawn(async move { n2.acquire(gpu).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the second GPU request must wait");
        node.release(first);
        let second = waiter.await.unwrap().unwrap();
        assert_eq!(second.gpus, vec![(0, 1.0)]);
    }

    #[tokio::test]
    async fn an_impossible_request_fails_without_waiting() {
        let node = NodeResources::new(4.0, 1 << 30, 2);
        let e = node
            .acquire(Resources::new(1.0, 3.0, 0).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, ActorError::NeverFits { .. }), "{e}");
    }

    #[test]
    fn overrides_replace_detection() {
        let node = NodeResources::detect(ResourceOverrides {
            cpus: Some(3.0),
            memory: Some(1 << 20),
            gpus: Some(2),
        });
        let t = node.total();
        assert_eq!((t.cpus, t.gpus, t.memory), (3.0, 2.0, 1 << 20));
    }

    #[test]
    fn detection_without_nvml_finds_zero_gpus_and_does_not_crash() {
        // This machine has no NVIDIA driver; on one that has, the count is real.
        let node = NodeResources::detect(ResourceOverrides::default());
        assert!(node.total().cpus >= 1.0);
        assert!(node.total().memory > 0);
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            return;
        }
        assert_eq!(node.total().gpus, 0.0);
    }

    #[test]
    fn gpu_ordinals_map_to_the_visible_devices_in_their_order() {
        assert_eq!(gpu_ids(2, "5,3"), vec!["5", "3"]);
        assert_eq!(gpu_ids(2, ""), vec!["0", "1"]);
        assert_eq!(gpu_ids(1, " 7 , 2"), vec!["7"]);
        let node = NodeResources::with_gpu_ids(1.0, 1 << 20, vec!["5".into(), "3".into()]);
        assert_eq!(node.total().gpus, 2.0);
        assert_eq!(node.gpu_ids(), ["5", "3"]);
    }
}
