//! The configuration types and their validation.

use std::path::{Path, PathBuf};

use regatta_common::ByteSize;
use serde::Deserialize;

use crate::{ConfigError, Result};

/// The whole cluster file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `[driver]`: where clients and workers reach the driver.
    pub driver: DriverConfig,
    /// `[worker]`: defaults for every worker.
    pub worker: WorkerConfig,
}

/// `[driver]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriverConfig {
    /// `driver.addresses`: every driver replica, `host:port`.
    pub addresses: Vec<String>,
    /// `driver.bind`: address the driver listens on.
    pub bind: String,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            addresses: vec!["127.0.0.1:7700".into()],
            bind: "127.0.0.1:7700".into(),
        }
    }
}

/// `[worker]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// `worker.cpus`: cores to use (0 = all).
    pub cpus: u32,
    /// `worker.memory_limit`: e.g. `4GiB`; operators that spill honour it.
    pub memory_limit: String,
    /// `worker.spill_dirs`: where shuffle and spill files go.
    pub spill_dirs: Vec<PathBuf>,
    /// `worker.gpus`: GPUs to offer actors; absent = what NVML finds. Declaring GPUs
    /// on a machine without any tests placement logic (the devices are fake).
    pub gpus: Option<u32>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            cpus: 0,
            memory_limit: "4GiB".into(),
            spill_dirs: vec![std::env::temp_dir().join("regatta-spill")],
            gpus: None,
        }
    }
}

impl ClusterConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let invalid = |key: &str, value: &str, allowed: &str| ConfigError::Invalid {
            path: origin.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        };
        if self.driver.addresses.is_empty() {
            return Err(invalid(
                "driver.addresses",
                "[]",
                "list at least one host:port",
            ));
        }
        for a in self
            .driver
            .addresses
            .iter()
            .chain(std::iter::once(&self.driver.bind))
        {
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(invalid(
                    "driver.addresses",
                    a,
                    "use host:port with a port in 1..65535",
                ));
            }
        }
        ByteSize::parse(&self.worker.memory_limit).map_err(|e| {
            invalid(
                "worker.memory_limit",
                &self.worker.memory_limit,
                &e.to_string(),
            )
        })?;
        if self.worker.spill_dirs.is_empty() {
            return Err(invalid(
                "worker.spill_dirs",
                "[]",
                "list at least one directory",
            ));
        }
        Ok(())
    }

    /// The worker memory limit in bytes.
    pub fn memory_limit_bytes(&self) -> u64 {
        ByteSize::parse(&self.worker.memory_limit)
            .map(|b| b.0)
            .unwrap_or(4 << 30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_parses_with_defaults_filled_in() {
        let c = ClusterConfig::parse("[worker]\nmemory_limit = \"256MiB\"\n", "c.toml").unwrap();
        assert_eq!(c.memory_limit_bytes(), 256 << 20);
        assert_eq!(c.driver.addresses, vec!["127.0.0.1:7700".to_string()]);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = ClusterConfig::parse("[worker]\nmemroy_limit = \"1GiB\"\n", "c.toml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("memroy_limit") && msg.contains("c.toml"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_name_key_value_and_what_is_allowed() {
        let e = ClusterConfig::parse("[worker]\nmemory_limit = \"lots\"\n", "c.toml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("worker.memory_limit") && msg.contains("lots") && msg.contains("GiB"),
            "{msg}"
        );
        let e = ClusterConfig::parse("[driver]\naddresses = [\"nohost\"]\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("driver.addresses"), "{e}");
    }

    #[test]
    fn gpus_are_detected_unless_declared() {
        let c = ClusterConfig::parse("", "c.toml").unwrap();
        assert_eq!(c.worker.gpus, None);
        let c = ClusterConfig::parse("[worker]\ngpus = 2\n", "c.toml").unwrap();
        assert_eq!(c.worker.gpus, Some(2));
        let e = ClusterConfig::parse("[worker]\ngpus = -1\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("gpus"), "{e}");
    }
}
