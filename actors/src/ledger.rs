//! Grants resource leases on one node.

use std::collections::BTreeMap;

use regatta_common::Resources;

use crate::{ActorError, Result};

/// Resources granted to one actor or task; hand it back with [`ResourceLedger::release`].
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub request: Resources,
    /// GPU ordinals given to the holder (for `CUDA_VISIBLE_DEVICES`), with the share of each.
    pub gpus: Vec<(u32, f64)>,
}

impl Lease {
    /// The value for `CUDA_VISIBLE_DEVICES`.
    pub fn cuda_visible_devices(&self) -> String {
        self.gpus
            .iter()
            .map(|(d, _)| d.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A node's free resources; GPUs are tracked per device.
#[derive(Debug, Clone)]
pub struct ResourceLedger {
    total: Resources,
    free_cpus: f64,
    free_memory: u64,
    /// Free share (0..=1) of each GPU ordinal.
    gpu_free: BTreeMap<u32, f64>,
}

const EPS: f64 = 1e-9;

impl ResourceLedger {
    /// A ledger for a node with `cpus`, `memory` bytes and `gpus` devices.
    pub fn new(cpus: f64, memory: u64, gpus: u32) -> Self {
        Self {
            total: Resources {
                cpus,
                gpus: f64::from(gpus),
                memory,
            },
            free_cpus: cpus,
            free_memory: memory,
            gpu_free: (0..gpus).map(|g| (g, 1.0)).collect(),
        }
    }

    /// What the node has in all.
    pub fn total(&self) -> Resources {
        self.total
    }

    /// Fails if `request` is malformed or could never be granted, however long one waited.
    pub fn check(&self, request: Resources) -> Result<()> {
        if request.gpus >= 1.0 && request.gpus.fract() > EPS {
            return Err(ActorError::BadGpuRequest(request.gpus));
        }
        if !request.fits_in(&self.total) {
            return Err(ActorError::NeverFits {
                request,
                total: self.total,
            });
        }
        Ok(())
    }

    /// Grants `request` now (`Ok(Some)`), not now but later (`Ok(None)`), or never (`Err`).
    pub fn try_acquire(&mut self, request: Resources) -> Result<Option<Lease>> {
        self.check(request)?;
        if request.cpus > self.free_cpus + EPS || request.memory > self.free_memory {
            return Ok(None);
        }
        let gpus = if request.gpus <= EPS {
            Vec::new()
        } else if request.gpus < 1.0 {
            // Pack fractions: the most-used device that still has room.
            let pick = self
                .gpu_free
                .iter()
                .filter(|(_, free)| **free + EPS >= request.gpus)
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(d, _)| *d);
            match pick {
                Some(d) => vec![(d, request.gpus)],
                None => return Ok(None),
            }
        } else {
            let want = request.gpus.round() as usize;
            let whole: Vec<u32> = self
                .gpu_free
                .iter()
                .filter(|(_, free)| (**free - 1.0).abs() < EPS)
                .map(|(d, _)| *d)
                .take(want)
                .collect();
            if whole.len() < want {
                return Ok(None);
            }
            whole.into_iter().map(|d| (d, 1.0)).collect()
        };
        self.free_cpus -= request.cpus;
        self.free_memory -= request.memory;
        for (d, share) in &gpus {
            if let Some(free) = self.gpu_free.get_mut(d) {
                *free -= share;
            }
        }
        Ok(Some(Lease { request, gpus }))
    }

    /// Returns a lease's resources.
    pub fn release(&mut self, lease: Lease) {
        self.free_cpus = (self.free_cpus + lease.request.cpus).min(self.total.cpus);
        self.free_memory = (self.free_memory + lease.request.memory).min(self.total.memory);
        for (d, share) in lease.gpus {
            if let Some(free) = self.gpu_free.get_mut(&d) {
                *free = (*free + share).min(1.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cpus: f64, gpus: f64) -> Resources {
        Resources::new(cpus, gpus, 0).unwrap()
    }

    #[test]
    fn whole_gpus_are_distinct_and_never_oversubscribed() {
        let mut l = ResourceLedger::new(8.0, 1 << 30, 2);
        let a = l.try_acquire(req(1.0, 1.0)).unwrap().unwrap();
        let b = l.try_acquire(req(1.0, 1.0)).unwrap().unwrap();
        assert_ne!(a.gpus[0].0, b.gpus[0].0);
        assert!(l.try_acquire(req(1.0, 1.0)).unwrap().is_none());
        l.release(a);
        assert!(l.try_acquire(req(1.0, 1.0)).unwrap().is_some());
    }

    #[test]
    fn fractions_pack_onto_one_device() {
        let mut l = ResourceLedger::new(8.0, 1 << 30, 2);
        let a = l.try_acquire(req(1.0, 0.5)).unwrap().unwrap();
        let b = l.try_acquire(req(1.0, 0.5)).unwrap().unwrap();
        assert_eq!(a.gpus[0].0, b.gpus[0].0);
        assert_eq!(a.cuda_visible_devices(), b.cuda_visible_devices());
    }

    #[test]
    fn impossible_requests_fail_at_once_naming_both_sides() {
        let mut l = ResourceLedger::new(8.0, 1 << 30, 2);
        let e = l.try_acquire(req(1.0, 3.0)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("3 GPUs") && msg.contains("2 GPUs"), "{msg}");
        assert!(matches!(
            l.try_acquire(req(1.0, 1.5)),
            Err(ActorError::BadGpuRequest(_))
        ));
    }
}
