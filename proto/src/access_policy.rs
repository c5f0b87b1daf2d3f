//! [`regatta_common::AccessPolicy`] on the wire, both ways.

use regatta_common::access::{AccessPolicy, UrlScheme};

impl From<UrlScheme> for crate::UrlScheme {
    fn from(s: UrlScheme) -> Self {
        match s {
            UrlScheme::Http => Self::Http,
            UrlScheme::Https => Self::Https,
            UrlScheme::S3 => Self::S3,
            UrlScheme::Gs => Self::Gs,
            UrlScheme::Az => Self::Az,
            UrlScheme::File => Self::File,
        }
    }
}

impl From<&AccessPolicy> for crate::AccessPolicy {
    fn from(p: &AccessPolicy) -> Self {
        Self {
            schemes: p
                .schemes
                .iter()
                .map(|s| crate::UrlScheme::from(*s) as i32)
                .collect(),
            private_networks: p.private_networks,
            allow_networks: p.allow_networks.iter().map(|n| n.to_string()).collect(),
            max_download_bytes: p.max_download_bytes,
            local_roots_limited: p.local_roots.is_some(),
            local_roots: p
                .local_roots
                .iter()
                .flatten()
                .map(|r| r.to_string_lossy().to_string())
                .collect(),
        }
    }
}

impl TryFrom<&crate::AccessPolicy> for AccessPolicy {
    type Error = String;

    /// Fails on what a driver would never send (an unknown scheme, a malformed
    /// network): a worker refuses to run under a policy it cannot read.
    fn try_from(p: &crate::AccessPolicy) -> Result<Self, String> {
        let schemes = p
            .schemes
            .iter()
            .map(|&s| match crate::UrlScheme::try_from(s) {
                Ok(crate::UrlScheme::Http) => Ok(UrlScheme::Http),
                Ok(crate::UrlScheme::Https) => Ok(UrlScheme::Https),
                Ok(crate::UrlScheme::S3) => Ok(UrlScheme::S3),
                Ok(crate::UrlScheme::Gs) => Ok(UrlScheme::Gs),
                Ok(crate::UrlScheme::Az) => Ok(UrlScheme::Az),
                Ok(crate::UrlScheme::File) => Ok(UrlScheme::File),
                _ => Err(format!("unknown URL scheme {s} in the access policy")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let allow_networks = p
            .allow_networks
            .iter()
            .map(|n| {
                n.parse()
                    .map_err(|e| format!("network {n:?} in the access policy: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            schemes,
            private_networks: p.private_networks,
            allow_networks,
            max_download_bytes: p.max_download_bytes.max(1),
            local_roots: p
                .local_roots_limited
                .then(|| p.local_roots.iter().map(Into::into).collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_survives_the_wire() {
        let mut p = AccessPolicy::cluster();
        p.allow_networks = vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        p.local_roots = Some(vec!["/data".into()]);
        p.schemes.retain(|s| *s != UrlScheme::Http);
        let wire = crate::AccessPolicy::from(&p);
        assert_eq!(AccessPolicy::try_from(&wire).unwrap(), p);
        let open = AccessPolicy::local();
        assert_eq!(
            AccessPolicy::try_from(&crate::AccessPolicy::from(&open)).unwrap(),
            open
        );
        let mut bad = wire.clone();
        bad.allow_networks.push("not a network".into());
        assert!(AccessPolicy::try_from(&bad).is_err());
    }
}
