//! [`Drivers`]: calls to whichever of several driver replicas leads. A follower
//! answers `Unavailable` naming the leader (the `regatta-leader` header); a dead
//! replica refuses the connection. Either way the call moves on and is retried
//! until a leader answers or the patience runs out.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, ClientTlsConfig};
use tonic::{Code, Status};

use crate::{endpoint, AuthChannel, TokenInterceptor};

/// The metadata key on a follower's refusal naming the leader's address.
pub const LEADER_HEADER: &str = "regatta-leader";

/// The driver replicas a client knows, and which one it believes leads.
pub struct Drivers {
    addresses: Mutex<Vec<String>>,
    current: Mutex<usize>,
    channels: Mutex<HashMap<String, Channel>>,
    token: String,
    tls: Option<ClientTlsConfig>,
    /// How long a call keeps looking for a leader.
    pub patience: Duration,
}

/// True for a refusal that another replica (or a later try) may not give:
/// `Unavailable` (a follower, no leader, a refused connection), or any status
/// whose cause is the connection itself (a replica that died mid-call surfaces
/// as `Unknown`, `Cancelled` or `Internal` carrying an h2, hyper or I/O error).
pub fn is_retryable(s: &Status) -> bool {
    match s.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Cancelled | Code::Internal | Code::DeadlineExceeded => {
            caused_by_transport(s)
        }
        _ => false,
    }
}

/// Walks the status's source chain for a transport-level error type.
fn caused_by_transport(s: &Status) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = cause {
        if e.is::<tonic::transport::Error>()
            || e.is::<h2::Error>()
            || e.is::<hyper::Error>()
            || e.is::<std::io::Error>()
        {
            return true;
        }
        cause = e.source();
    }
    false
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drivers {
    /// `addresses`: `host:port` or URLs of every replica (one for a lone driver).
    pub fn new(
        addresses: Vec<String>,
        token: &str,
        tls: Option<ClientTlsConfig>,
    ) -> Result<Self, String> {
        if addresses.is_empty() {
            return Err("no driver address given".into());
        }
        for a in &addresses {
            endpoint(a, tls.as_ref())?;
        }
        Ok(Self {
            addresses: Mutex::new(addresses),
            current: Mutex::new(0),
            channels: Mutex::new(HashMap::new()),
            token: token.to_string(),
            tls,
            patience: Duration::from_secs(30),
        })
    }

    /// Parses `a,b,c` into addresses.
    pub fn split(list: &str) -> Vec<String> {
        list.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The replica calls go to now.
    pub fn current(&self) -> String {
        let addresses = lock(&self.addresses);
        addresses[*lock(&self.current) % addresses.len()].clone()
    }

    /// Every replica known.
    pub fn addresses(&self) -> Vec<String> {
        lock(&self.addresses).clone()
    }

    /// A channel to `address` with the token on every call; it connects lazily
    /// and reconnects by itself.
    pub fn channel(&self, address: &str) -> Result<AuthChannel, Status> {
        let mut channels = lock(&self.channels);
        let channel = match channels.get(address) {
            Some(c) => c.clone(),
            None => {
                let c = endpoint(address, self.tls.as_ref())
                    .map_err(Status::invalid_argument)?
                    .connect_timeout(Duration::from_secs(2))
                    .http2_keep_alive_interval(Duration::from_secs(1))
                    .keep_alive_timeout(Duration::from_secs(2))
                    .keep_alive_while_idle(true)
                    .connect_lazy();
                channels.insert(address.to_string(), c.clone());
                c
            }
        };
        Ok(tonic::service::interceptor::InterceptedService::new(
            channel,
            TokenInterceptor::new(&self.token),
        ))
    }

    /// Moves on after `refusal`: to the leader it names, else to the next replica.
    /// Returns true when the refusal named a leader.
    pub fn follow(&self, refusal: &Status) -> bool {
        let hint = refusal
            .metadata()
            .get(LEADER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut addresses = lock(&self.addresses);
        let mut current = lock(&self.current);
        match hint {
            Some(leader) => {
                let at = match addresses.iter().position(|a| same_address(a, &leader)) {
                    Some(i) => i,
                    None => {
                        addresses.push(leader);
                        addresses.len() - 1
                    }
                };
                *current = at;
                true
            }
            None => {
                *current = (*current + 1) % addresses.len();
                false
            }
        }
    }

    /// Calls `f` on the leader's channel, following redirects and skipping dead
    /// replicas, until it answers or `patience` runs out.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, Status>
    where
        F: FnMut(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.call_within(self.patience, f).await
    }

    /// [`Drivers::call`] with its own patience.
    pub async fn call_within<T, F, Fut>(&self, patience: Duration, mut f: F) -> Result<T, Status>
    where
        F: FnMut(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + patience;
        let mut tries = 0u32;
        loop {
            let address = self.current();
            let outcome = f(self.channel(&address)?).await;
            match outcome {
                Ok(v) => return Ok(v),
                Err(s) if is_retryable(&s) && Instant::now() < deadline => {
                    tries += 1;
                    let named_leader = self.follow(&s);
                    // A named leader is tried at once; a round of dead or
                    // leaderless replicas waits a little (an election is on).
                    let n = lock(&self.addresses).len() as u32;
                    if !named_leader && tries.is_multiple_of(n.max(1)) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                Err(s) => return Err(s),
            }
        }
    }
}

fn same_address(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        s.trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_connection_is_retryable_and_a_refusal_is_not() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let dropped = Status::from_error(Box::new(reset));
        assert_eq!(dropped.code(), Code::Unknown);
        assert!(is_retryable(&dropped), "{dropped:?}");
        assert!(is_retryable(&Status::unavailable("no leader")));
        // The same codes without a transport cause are the driver's own answers.
        assert!(!is_retryable(&Status::unknown("connection string invalid")));
        assert!(!is_retryable(&Status::internal("driver storage /x: full")));
        assert!(!is_retryable(&Status::permission_denied("wrong token")));
    }
}
