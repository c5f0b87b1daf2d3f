//! What an actor or task asks for, and what a machine has.

use serde::{Deserialize, Serialize};

use crate::{CommonError, Result};

/// CPUs, GPUs (fractions allowed) and memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub cpus: f64,
    pub gpus: f64,
    pub memory: u64,
}

impl Resources {
    /// A request, checked for negative or non-finite values.
    pub fn new(cpus: f64, gpus: f64, memory: u64) -> Result<Self> {
        for (name, v) in [("cpus", cpus), ("gpus", gpus)] {
            if !v.is_finite() || v < 0.0 {
                return Err(CommonError::Resources(format!(
                    "{name} must be a finite number >= 0, got {v}"
                )));
            }
        }
        Ok(Self { cpus, gpus, memory })
    }

    /// True if `self` fits inside `available`.
    pub fn fits_in(&self, available: &Resources) -> bool {
        const EPS: f64 = 1e-9;
        self.cpus <= available.cpus + EPS
            && self.gpus <= available.gpus + EPS
            && self.memory <= available.memory
    }
}

#[cfg(test)]
mod tests {
    use super::Resources;

    #[test]
    fn fit_checks_every_dimension() {
        let have = Resources::new(4.0, 1.0, 1 << 30).unwrap();
        assert!(Resources::new(4.0, 0.5, 1 << 20).unwrap().fits_in(&have));
        assert!(!Resources::new(4.5, 0.0, 0).unwrap().fits_in(&have));
        assert!(!Resources::new(1.0, 2.0, 0).unwrap().fits_in(&have));
        assert!(!Resources::new(1.0, 0.0, 2 << 30).unwrap().fits_in(&have));
        assert!(Resources::new(-1.0, 0.0, 0).is_err());
    }
}
