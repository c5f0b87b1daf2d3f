//! The AWS shared files: `~/.aws/credentials` (keys) and `~/.aws/config`
//! (region, endpoint) for a named profile, as the AWS CLI and SDKs read them.
//! Static keys only; SSO and credential processes are the SDKs' business.

use std::collections::HashMap;
use std::path::PathBuf;

/// What a profile says.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct AwsProfile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

impl std::fmt::Debug for AwsProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("AwsProfile")
            .field("has_keys", &self.access_key_id.is_some())
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

fn home_file(env: &str, default: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws").join(default))
}

/// Sections of an INI file: name → key → value (keys lower-cased).
fn sections(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_string());
            continue;
        }
        if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

impl AwsProfile {
    /// Profile `name` (None: `AWS_PROFILE`, else `default`) from the shared
    /// files (`AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` move them).
    /// Missing files or profiles give an empty profile.
    pub fn load(name: Option<&str>) -> Self {
        let name = name
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_PROFILE").ok())
            .unwrap_or_else(|| "default".into());
        let read = |p: Option<PathBuf>| {
            p.and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
        };
        let credentials = read(home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"));
        let config = read(home_file("AWS_CONFIG_FILE", "config"));
        Self::from_texts(&name, &credentials, &config)
    }

    fn from_texts(name: &str, credentials: &str, config: &str) -> Self {
        let creds = sections(credentials).remove(name).unwrap_or_default();
        // In the config file every profile but `default` is `[profile NAME]`.
        let config_name = if name == "default" {
            "default".to_string()
        } else {
            format!("profile {name}")
        };
        let mut conf = sections(config);
        let conf = conf
            .remove(&config_name)
            .or_else(|| conf.remove(name))
            .unwrap_or_default();
        let pick = |k: &str| creds.get(k).or_else(|| conf.get(k)).cloned();
        Self {
            access_key_id: pick("aws_access_key_id"),
            secret_access_key: pick("aws_secret_access_key"),
            session_token: pick("aws_session_token"),
            region: conf.get("region").cloned(),
            endpoint_url: conf.get("endpoint_url").cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_region_and_endpoint_of_a_named_profile() {
        let creds = "[default]\naws_access_key_id = AKD\naws_secret_access_key = SD\n\n\
                     [dev]\naws_access_key_id=AKDEV\naws_secret_access_key=SDEV\n";
        let config = "[default]\nregion = us-east-2\n[profile dev]\nregion = eu-north-1\n\
                      endpoint_url = http://127.0.0.1:9000\n";
        let dev = AwsProfile::from_texts("dev", creds, config);
        assert_eq!(dev.access_key_id.as_deref(), Some("AKDEV"));
        assert_eq!(dev.secret_access_key.as_deref(), Some("SDEV"));
        assert_eq!(dev.region.as_deref(), Some("eu-north-1"));
        assert_eq!(dev.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        let d = AwsProfile::from_texts("default", creds, config);
        assert_eq!(d.region.as_deref(), Some("us-east-2"));
        assert!(AwsProfile::from_texts("none", creds, config)
            .access_key_id
            .is_none());
        assert!(!format!("{dev:?}").contains("SDEV"));
    }
}
