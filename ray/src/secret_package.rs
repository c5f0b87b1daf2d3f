//! [`SecretPackage`]: the secrets a job's processes need (the cluster token,
//! Ray's token, the driver job's settings), shipped as a small `py_modules`
//! package rather than in `runtime_env.env_vars`, which Ray shows to anyone who
//! may list its jobs. Ray unpacks the package into a directory on `PYTHONPATH`;
//! `regatta_common::secret_var` reads it from there.

use std::collections::BTreeMap;

use regatta_common::SECRETS_MODULE_VAR;
use serde_json::{json, Value};

use crate::client::RayClient;
use crate::package::{write_directory, write_stored, WorkerPackage};
use crate::{RayError, Result};

/// The directory inside the package (the "module" Ray puts on `PYTHONPATH`).
pub const SECRETS_MODULE: &str = "regatta_secrets";

/// A secrets package stored in Ray's GCS under a random name (not one derived
/// from the secrets, which would let a guess be checked against the name).
#[derive(Debug, Clone)]
pub struct SecretPackage {
    name: String,
}

impl SecretPackage {
    /// Zips `secrets` (variable name to value) and stores them in Ray.
    pub async fn upload(client: &RayClient, secrets: &BTreeMap<String, String>) -> Result<Self> {
        let name = format!("_ray_pkg_{}.zip", regatta_common::random_hex_128());
        let zip = secrets_zip(secrets).map_err(|e| RayError::Package {
            path: name.clone(),
            message: e.to_string(),
        })?;
        client.upload_package(&name, zip).await?;
        Ok(Self { name })
    }

    /// The `gcs://` URI a job's `runtime_env.py_modules` names.
    pub fn uri(&self) -> String {
        format!("gcs://{}", self.name)
    }
}

/// A job's `runtime_env`: the working directory (the binary), the secrets as a
/// `py_modules` package, and `env` (no secrets) with the variable that tells
/// regatta where the secrets are.
pub fn runtime_env(
    package: &WorkerPackage,
    secrets: &SecretPackage,
    mut env: serde_json::Map<String, Value>,
) -> Value {
    env.insert(SECRETS_MODULE_VAR.into(), json!(SECRETS_MODULE));
    json!({
        "working_dir": package.uri(),
        "py_modules": [secrets.uri()],
        "env_vars": env,
    })
}

/// The zip: `regatta_secrets/NAME` per secret, stored, owner-only modes.
fn secrets_zip(secrets: &BTreeMap<String, String>) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut entries = Vec::new();
    let mut offset = 0;
    for (name, value) in secrets {
        let path = format!("{SECRETS_MODULE}/{name}");
        let (entry, next) = write_stored(&mut out, &path, 0o100600, value.as_bytes(), offset)?;
        entries.push(entry);
        offset = next;
    }
    write_directory(&mut out, &entries, offset)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secrets_zip_unpacks_with_python_into_one_file_per_secret() {
        let secrets = BTreeMap::from([
            ("REGATTA_TOKEN".to_string(), "cluster-token".to_string()),
            (
                "REGATTA_RAY_TOKEN".to_string(),
                "ray token with spaces".to_string(),
            ),
        ]);
        let zip = secrets_zip(&secrets).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "regatta-secrets-zip-{}",
            regatta_common::random_hex_128()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.zip");
        std::fs::write(&path, zip).unwrap();
        // Ray unpacks py_modules packages with Python's zipfile, keeping the
        // top-level directory.
        let script = "import sys, zipfile\n\
            z = zipfile.ZipFile(sys.argv[1])\n\
            assert z.testzip() is None\n\
            z.extractall(sys.argv[2])\n";
        let run = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .arg(dir.join("out"))
            .output()
            .expect("python3 is needed to check the package as Ray reads it");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        for (name, value) in &secrets {
            let file = dir.join("out").join(SECRETS_MODULE).join(name);
            assert_eq!(&std::fs::read_to_string(file).unwrap(), value);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
