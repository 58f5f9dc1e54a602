//! Who may hold connections: at most so many open at once per client
//! address, proxies exempt (and the proxies whose forwarded headers are
//! believed, see `HUB_TRUSTED_PROXIES`).

use hub_core::error::{ApiError, Protocol};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Open connections per client address. Trusted proxies are not counted: a
/// proxy carries many clients' connections.
pub struct PerIp {
    /// 0: no limit.
    pub limit: usize,
    exempt: Vec<IpNet>,
    open: OpenCounts,
    /// When a refusal was last logged (ms since start), so an attack cannot flood the log.
    last_warning: AtomicU64,
    started: Instant,
}

/// A connection's place in [`PerIp`]'s count, given back when dropped (when
/// the connection ends, however it ends).
pub struct Slot(Option<(IpAddr, OpenCounts)>);

/// Open connections by client address.
type OpenCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

impl PerIp {
    pub fn new(limit: usize, exempt: Vec<IpNet>) -> PerIp {
        PerIp {
            limit,
            exempt,
            open: Arc::default(),
            last_warning: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` at the limit.
    pub fn admit(&self, ip: IpAddr) -> Option<Slot> {
        if self.limit == 0 || self.exempt.iter().any(|net| net.contains(&ip)) {
            return Some(Slot(None));
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            drop(open);
            self.warn(ip);
            return None;
        }
        *n += 1;
        Some(Slot(Some((ip, self.open.clone()))))
    }

    fn warn(&self, ip: IpAddr) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%ip, limit = self.limit, "refusing connections beyond HUB_MAX_CONNECTIONS_PER_IP (logged at most every 10 s)");
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((ip, open)) = self.0.take() {
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

/// Answers a connection over the per-address limit with a 503 and closes it.
/// The answer is written without waiting (it fits in a fresh socket's send
/// buffer); nothing is read, so a refused client costs no more than this.
pub fn refuse(stream: &tokio::net::TcpStream, limit: usize) {
    let body = ApiError::unavailable(format!(
        "Too many connections from your address (the limit is {limit}); close some or retry shortly."
    ))
    .body(Protocol::Hub)
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::PerIp;

    #[test]
    fn an_address_gets_its_places_back_as_connections_end() {
        let per_ip = PerIp::new(2, vec!["10.0.0.0/8".parse().unwrap()]);
        let a = "192.0.2.1".parse().unwrap();
        let (one, two) = (per_ip.admit(a).unwrap(), per_ip.admit(a).unwrap());
        assert!(per_ip.admit(a).is_none(), "a third at the limit");
        assert!(
            per_ip.admit("192.0.2.2".parse().unwrap()).is_some(),
            "another address has its own count"
        );
        let proxy: Vec<_> = (0..10).map(|_| per_ip.admit("10.1.2.3".parse().unwrap())).collect();
        assert!(proxy.iter().all(Option::is_some), "a trusted proxy is not counted");
        drop(one);
        let three = per_ip.admit(a);
        assert!(three.is_some());
        drop((two, three));
        assert!(
            per_ip.open.lock().unwrap().is_empty(),
            "no count left for closed connections"
        );
        assert!(PerIp::new(0, vec![]).admit(a).is_some(), "0: no limit");
    }
}
