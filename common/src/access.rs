//! [`AccessPolicy`]: what a job may read. A URL column comes from data (a crawl,
//! a user's upload), not from whoever submitted the job, so on a cluster a row
//! must not be able to name `/proc/self/environ`, the node's TLS key or the
//! cloud's instance-credential address `169.254.169.254` and have those bytes
//! land in the output. The cluster file's `[access]` section is this type; the
//! driver hands it to every worker when the worker registers.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The URL schemes a job may read from. `File` covers `file://` URLs and plain
/// paths alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UrlScheme {
    Http,
    Https,
    S3,
    Gs,
    Az,
    File,
}

impl UrlScheme {
    pub const ALL: [UrlScheme; 6] = [
        Self::Http,
        Self::Https,
        Self::S3,
        Self::Gs,
        Self::Az,
        Self::File,
    ];

    /// Its name as written in URLs and in the cluster file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::S3 => "s3",
            Self::Gs => "gs",
            Self::Az => "az",
            Self::File => "file",
        }
    }

    /// The scheme `url` uses: its prefix before `://`, or `File` for a plain
    /// path. None for a scheme regatta does not read (`ftp://`, `gopher://`).
    pub fn of(url: &str) -> Option<Self> {
        let Some((scheme, _)) = url.split_once("://") else {
            return Some(Self::File);
        };
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            // The object-store aliases the engine accepts.
            "s3a" => Some(Self::S3),
            "gcs" => Some(Self::Gs),
            "abfs" | "abfss" | "azure" => Some(Self::Az),
            _ => Self::ALL.into_iter().find(|s| s.name() == scheme),
        }
    }
}

impl fmt::Display for UrlScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What jobs may read. See docs/security.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessPolicy {
    /// `access.schemes`: the URL schemes rows and inputs may use.
    pub schemes: Vec<UrlScheme>,
    /// `access.private_networks`: whether downloads may reach loopback, private
    /// (RFC 1918, unique-local), link-local (the cloud metadata address),
    /// carrier-grade NAT and unspecified addresses. Checked on the addresses a
    /// name resolves to, and again on every redirect.
    pub private_networks: bool,
    /// `access.allow_networks`: networks downloads may reach even when
    /// `private_networks` is false (an internal image server, `10.1.0.0/16`).
    pub allow_networks: Vec<IpNet>,
    /// `access.max_download_bytes`: the most bytes one download may return
    /// (a number or a size such as `"256MiB"`).
    #[serde(deserialize_with = "byte_count")]
    pub max_download_bytes: u64,
    /// `access.local_roots`: the directories local paths (plain, `file://`,
    /// globs) must resolve under, symbolic links followed. None: anywhere (a
    /// local session). On a cluster `/proc`, `/sys` and `/dev` are refused even
    /// under a listed root.
    pub local_roots: Option<Vec<PathBuf>>,
}

/// What a download may be at most unless configured: a row's bytes live in one
/// Arrow binary array, which cannot pass 2 GiB.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// Pseudo-filesystems no job on a cluster reads, whatever the roots say:
/// `/proc/self/environ` holds the token, `/dev/zero` never ends.
const SYSTEM_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

impl Default for AccessPolicy {
    /// The cluster's default: the strict one.
    fn default() -> Self {
        Self::cluster()
    }
}

impl AccessPolicy {
    /// A cluster's default: every scheme, no private addresses, 1 GiB per
    /// download, no local paths until `local_roots` lists some.
    pub fn cluster() -> Self {
        Self {
            schemes: UrlScheme::ALL.to_vec(),
            private_networks: false,
            allow_networks: Vec::new(),
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            local_roots: Some(Vec::new()),
        }
    }

    /// A local session's default: the user's own machine, read as the user.
    pub fn local() -> Self {
        Self {
            schemes: UrlScheme::ALL.to_vec(),
            private_networks: true,
            allow_networks: Vec::new(),
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            local_roots: None,
        }
    }

    /// The scheme of `url`, if this policy lets jobs read it.
    pub fn check_scheme(&self, url: &str) -> Result<UrlScheme, Refusal> {
        let scheme = UrlScheme::of(url).ok_or_else(|| {
            Refusal(format!(
                "{} uses a scheme regatta does not read",
                cut_query(url)
            ))
        })?;
        if self.schemes.contains(&scheme) {
            Ok(scheme)
        } else {
            Err(Refusal(format!(
                "{scheme}: URLs are not in access.schemes ({})",
                self.schemes
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Whether a download may connect to `ip`.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.private_networks || self.allow_networks.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match address_class(ip) {
            None => Ok(()),
            Some(class) => Err(Refusal(format!(
                "{ip} is a {class} address (access.private_networks is false; list the \
                 network in access.allow_networks to reach it)"
            ))),
        }
    }

    /// Opens `path` for reading when the policy allows it. With local roots,
    /// the file opened is checked again by its descriptor: a directory on the
    /// way swapped for a link between the check and the open (a race a local
    /// user could win) would otherwise escape the roots.
    pub fn open_local(&self, path: &Path) -> Result<std::fs::File, LocalOpenError> {
        let real = self.check_local(path).map_err(LocalOpenError::Refused)?;
        let file = std::fs::File::open(&real).map_err(LocalOpenError::Io)?;
        #[cfg(target_os = "linux")]
        if self.local_roots.is_some() {
            use std::os::fd::AsRawFd;
            let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
                .map_err(LocalOpenError::Io)?;
            if opened != real {
                self.check_local(&opened).map_err(LocalOpenError::Refused)?;
            }
        }
        Ok(file)
    }

    /// The file `path` names, symbolic links resolved, if this policy lets
    /// jobs read it. A path that does not exist is passed through unchanged (its
    /// reader reports it missing) only when local paths are unrestricted.
    pub fn check_local(&self, path: &Path) -> Result<PathBuf, Refusal> {
        if !self.schemes.contains(&UrlScheme::File) {
            return Err(Refusal(format!(
                "{}: local paths are not in access.schemes",
                path.display()
            )));
        }
        let Some(roots) = &self.local_roots else {
            return Ok(path.to_path_buf());
        };
        // Resolved first: a link under a root may point anywhere.
        let real =
            std::fs::canonicalize(path).map_err(|e| Refusal(format!("{}: {e}", path.display())))?;
        if let Some(dir) = SYSTEM_DIRS.iter().find(|d| real.starts_with(d)) {
            return Err(Refusal(format!(
                "{} is under {dir}, which jobs on a cluster never read",
                path.display()
            )));
        }
        // Roots are compared as given: `resolved` resolves them once.
        if roots.iter().any(|root| real.starts_with(root)) {
            return Ok(real);
        }
        Err(Refusal(if roots.is_empty() {
            format!(
                "{}: jobs on this cluster may not read local files (list the \
                 directories they may read in access.local_roots)",
                path.display()
            )
        } else {
            format!(
                "{} is outside access.local_roots ({})",
                path.display(),
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }))
    }

    /// This policy with its roots' links resolved, once, so each check
    /// compares resolved paths without touching the roots again. A root that
    /// does not exist stays as written.
    pub fn resolved(mut self) -> Self {
        if let Some(roots) = &mut self.local_roots {
            for root in roots.iter_mut() {
                if let Ok(real) = std::fs::canonicalize(&*root) {
                    *root = real;
                }
            }
        }
        self
    }

    /// The problem with this policy, if it has one: (key, what is wrong).
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        if self.max_download_bytes == 0 {
            return Some(("access.max_download_bytes", "must be at least 1".into()));
        }
        if let Some(roots) = &self.local_roots {
            if let Some(r) = roots.iter().find(|r| !r.is_absolute()) {
                return Some((
                    "access.local_roots",
                    format!("{} is not an absolute path", r.display()),
                ));
            }
        }
        None
    }
}

/// A byte count written as a number or as a size (`"256MiB"`).
fn byte_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        Number(u64),
        Text(String),
    }
    match Count::deserialize(d)? {
        Count::Number(n) => Ok(n),
        Count::Text(t) => crate::ByteSize::parse(&t)
            .map(|b| b.0)
            .map_err(serde::de::Error::custom),
    }
}

/// Why [`AccessPolicy::open_local`] gave no file.
#[derive(Debug)]
pub enum LocalOpenError {
    /// The policy refused the path.
    Refused(Refusal),
    /// The file could not be opened (missing, unreadable).
    Io(std::io::Error),
}

/// Why the policy refused a read; the text names the key that would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    /// A download past `access.max_download_bytes` (`cap`).
    pub fn too_big(cap: u64) -> Self {
        Self(format!(
            "larger than access.max_download_bytes ({})",
            crate::ByteSize(cap)
        ))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused by the access policy: {}", self.0)
    }
}

impl std::error::Error for Refusal {}

/// What kind of non-public address `ip` is, if it is one.
pub fn address_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if a == 100 && (64..128).contains(&b) {
                Some("carrier-grade NAT")
            } else if v4.is_broadcast() || v4.is_multicast() || a >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            // An IPv4 address written as IPv6 (::ffff:169.254.169.254) is that address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return address_class(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("reserved")
            } else {
                None
            }
        }
    }
}

/// `url` without its query string and fragment: presigned URLs carry their
/// signature there, and errors go to logs, the Raft log and the dashboard.
pub fn cut_query(url: &str) -> String {
    match url.find(['?', '#']) {
        Some(i) => format!("{}?…", &url[..i]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_read_from_urls_and_paths() {
        assert_eq!(UrlScheme::of("HTTPS://x/y"), Some(UrlScheme::Https));
        assert_eq!(UrlScheme::of("/etc/passwd"), Some(UrlScheme::File));
        assert_eq!(UrlScheme::of("s3a://b/k"), Some(UrlScheme::S3));
        assert_eq!(UrlScheme::of("gopher://x"), None);
        let p = AccessPolicy {
            schemes: vec![UrlScheme::Https],
            ..AccessPolicy::cluster()
        };
        assert!(p.check_scheme("https://x").is_ok());
        let e = p.check_scheme("http://x").unwrap_err().to_string();
        assert!(e.contains("access.schemes"), "{e}");
        assert!(p.check_scheme("ftp://x").is_err());
    }

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let p = AccessPolicy::cluster();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            let e = p.check_address(ip).unwrap_err().to_string();
            assert!(
                e.contains(refused) || e.contains("169.254"),
                "{refused}: {e}"
            );
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(p.check_address(public.parse().unwrap()).is_ok(), "{public}");
        }
        let mut allowed = AccessPolicy::cluster();
        allowed.allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(allowed.check_address("127.0.0.9".parse().unwrap()).is_ok());
        assert!(allowed
            .check_address("169.254.169.254".parse().unwrap())
            .is_err());
        assert!(AccessPolicy::local()
            .check_address("169.254.169.254".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn local_paths_must_resolve_under_a_root() {
        let dir = std::env::temp_dir().join(format!("regatta-access-{}", std::process::id()));
        let inside = dir.join("in");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("ok.txt"), b"x").unwrap();
        std::fs::write(dir.join("secret.txt"), b"x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.join("secret.txt"), inside.join("link.txt")).unwrap();
        let p = AccessPolicy {
            local_roots: Some(vec![inside.clone()]),
            ..AccessPolicy::cluster()
        }
        .resolved();
        assert!(p.check_local(&inside.join("ok.txt")).is_ok());
        let e = p.check_local(&dir.join("secret.txt")).unwrap_err();
        assert!(e.to_string().contains("outside access.local_roots"), "{e}");
        #[cfg(unix)]
        assert!(p.check_local(&inside.join("link.txt")).is_err());
        assert!(p.check_local(&inside.join("../secret.txt")).is_err());
        // Opening checks the same, and opens what it checked.
        let mut opened = String::new();
        std::io::Read::read_to_string(
            &mut p.open_local(&inside.join("ok.txt")).unwrap(),
            &mut opened,
        )
        .unwrap();
        assert_eq!(opened, "x");
        assert!(matches!(
            p.open_local(&dir.join("secret.txt")),
            Err(LocalOpenError::Refused(_))
        ));
        #[cfg(unix)]
        assert!(matches!(
            p.open_local(&inside.join("link.txt")),
            Err(LocalOpenError::Refused(_))
        ));
        let everything = AccessPolicy {
            local_roots: Some(vec![PathBuf::from("/")]),
            ..AccessPolicy::cluster()
        };
        let e = everything
            .check_local(Path::new("/proc/self/environ"))
            .unwrap_err();
        assert!(e.to_string().contains("/proc"), "{e}");
        let none = AccessPolicy::cluster().check_local(&inside.join("ok.txt"));
        assert!(none.unwrap_err().to_string().contains("access.local_roots"));
        assert!(AccessPolicy::local()
            .check_local(Path::new("/proc/self/environ"))
            .is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn queries_are_cut_from_urls() {
        assert_eq!(
            cut_query("https://b.s3/k.jpg?X-Amz-Signature=abc"),
            "https://b.s3/k.jpg?…"
        );
        assert_eq!(cut_query("/a/b"), "/a/b");
    }

    #[test]
    fn the_section_parses_with_cluster_defaults() {
        let p: AccessPolicy = serde_json::from_str(
            r#"{"allow_networks": ["127.0.0.0/8"], "local_roots": ["/data"]}"#,
        )
        .unwrap();
        assert!(!p.private_networks);
        assert_eq!(p.local_roots, Some(vec![PathBuf::from("/data")]));
        assert_eq!(p.max_download_bytes, DEFAULT_MAX_DOWNLOAD_BYTES);
        let q: AccessPolicy = serde_json::from_str(r#"{"max_download_bytes": "2MiB"}"#).unwrap();
        assert_eq!(q.max_download_bytes, 2 << 20);
        assert!(serde_json::from_str::<AccessPolicy>(r#"{"schemes": ["ftp"]}"#).is_err());
    }
}
