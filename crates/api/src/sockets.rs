//! How many WebSockets are open, per user and in all: every socket holds a permit
//! from [`SocketRegistry::admit`] for its whole life, and a socket over either limit
//! is closed right after the handshake with a close code that says which (a browser
//! sees the close code and reason of a WebSocket, never the body of a refused
//! handshake).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aether_domain::id::UserId;

/// Close code 1008 (policy violation): the user has too many sockets open.
pub const CLOSE_USER_LIMIT: u16 = 1008;
/// Close code 1013 (try again later): the server has as many sockets as it takes.
pub const CLOSE_SERVER_LIMIT: u16 = 1013;

/// The open sockets, counted.
#[derive(Debug)]
pub struct SocketRegistry {
    max_total: usize,
    max_per_user: usize,
    open: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_user: HashMap<UserId, usize>,
}

/// Why a socket was refused: the close code and reason it is closed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
}

/// A socket's place in the count, given back when dropped.
#[derive(Debug)]
pub struct SocketPermit {
    registry: Arc<SocketRegistry>,
    user: UserId,
}

impl SocketRegistry {
    /// At most `max_total` sockets, and `max_per_user` for any one user (0: no limit).
    pub fn new(max_total: usize, max_per_user: usize) -> Self {
        Self { max_total, max_per_user, open: Mutex::new(Counts::default()) }
    }

    /// Counts a new socket of `user`, or says why it may not be opened.
    pub fn admit(self: &Arc<Self>, user: UserId) -> Result<SocketPermit, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.max_total > 0 && open.total >= self.max_total {
            metrics::counter!("aether_websocket_refused_total", "reason" => "server_limit").increment(1);
            return Err(Refusal { code: CLOSE_SERVER_LIMIT, reason: "the server has too many open sockets" });
        }
        let mine = open.per_user.get(&user).copied().unwrap_or(0);
        if self.max_per_user > 0 && mine >= self.max_per_user {
            metrics::counter!("aether_websocket_refused_total", "reason" => "user_limit").increment(1);
            return Err(Refusal { code: CLOSE_USER_LIMIT, reason: "too many open sockets for this user" });
        }
        open.total += 1;
        open.per_user.insert(user, mine + 1);
        metrics::gauge!("aether_websockets_open").set(open.total as f64);
        Ok(SocketPermit { registry: Arc::clone(self), user })
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).total
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut open = self.registry.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.per_user.remove(&self.user);
            }
        }
        metrics::gauge!("aether_websockets_open").set(open.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_counted_per_user_and_in_all() {
        let registry = Arc::new(SocketRegistry::new(3, 2));
        let (alice, bob) = (UserId::new(), UserId::new());
        let first = registry.admit(alice).unwrap_or_else(|refusal| panic!("{refusal:?}"));
        let _second = registry.admit(alice).unwrap_or_else(|refusal| panic!("{refusal:?}"));
        assert_eq!(
            registry.admit(alice).map(|_| ()),
            Err(Refusal { code: CLOSE_USER_LIMIT, reason: "too many open sockets for this user" })
        );
        let _third = registry.admit(bob).unwrap_or_else(|refusal| panic!("{refusal:?}"));
        assert_eq!(registry.admit(bob).map(|_| ()).map_err(|refusal| refusal.code), Err(CLOSE_SERVER_LIMIT));
        drop(first);
        assert_eq!(registry.open(), 2);
        assert!(registry.admit(bob).is_ok(), "a closed socket gives its place back");
        assert_eq!(registry.open(), 2, "the permit of the last admission was dropped at once");
    }

    #[test]
    fn zero_means_no_limit() {
        let registry = Arc::new(SocketRegistry::new(0, 0));
        let user = UserId::new();
        let permits: Vec<_> = (0..100).map(|_| registry.admit(user)).collect();
        assert!(permits.iter().all(Result::is_ok));
        assert_eq!(registry.open(), 100);
    }
}
