//! Cancel requests and statement deadlines.
//!
//! pgwire's own cancel only covers planning (`do_query`); a leadline query
//! spends its time streaming. Each connection has a [`Slot`] holding the
//! token of its running statement; a CancelRequest (pid + secret key) finds
//! the slot and fires the token, which the row stream watches between
//! batches and while it waits for the next one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use tokio::sync::Notify;

use super::errors::PgError;

/// Fired by a cancel request.
#[derive(Debug, Default)]
pub struct Token {
    fired: AtomicBool,
    notify: Notify,
}

impl Token {
    pub fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
    pub async fn fired(&self) {
        loop {
            let n = self.notify.notified();
            if self.is_fired() {
                return;
            }
            n.await;
        }
    }
}

/// The running statement of one connection.
#[derive(Debug, Default)]
pub struct Slot {
    current: Mutex<Option<Arc<Token>>>,
}

impl Slot {
    pub fn begin(&self) -> Arc<Token> {
        let t = Arc::new(Token::default());
        if let Ok(mut c) = self.current.lock() {
            *c = Some(t.clone());
        }
        t
    }
    fn cancel(&self) {
        if let Ok(c) = self.current.lock()
            && let Some(t) = c.as_ref()
        {
            t.fire();
        }
    }
}

/// Server-wide map from (pid, secret key) to connection slots.
#[derive(Debug, Default)]
pub struct Registry {
    slots: Mutex<HashMap<(i32, Bytes), Weak<Slot>>>,
}

impl Registry {
    pub fn register(self: &Arc<Self>, pid: i32, secret: Bytes, slot: &Arc<Slot>) -> Registration {
        if let Ok(mut m) = self.slots.lock() {
            m.insert((pid, secret.clone()), Arc::downgrade(slot));
        }
        Registration { registry: self.clone(), key: (pid, secret) }
    }
}

/// Removes a connection from the registry when it ends.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    key: (i32, Bytes),
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut m) = self.registry.slots.lock() {
            m.remove(&self.key);
        }
    }
}

#[derive(Debug)]
pub struct Canceller {
    pub registry: Arc<Registry>,
}

#[async_trait]
impl CancelHandler for Canceller {
    async fn on_cancel_request(&self, req: CancelRequest) {
        let slot = self
            .registry
            .slots
            .lock()
            .ok()
            .and_then(|m| m.get(&(req.pid, req.secret_key.to_bytes())).and_then(Weak::upgrade));
        if let Some(slot) = slot {
            tracing::info!(pid = req.pid, "cancel request");
            slot.cancel();
        }
    }
}

/// What a running statement watches: its cancel token and its deadline.
#[derive(Debug, Clone)]
pub struct Guard {
    pub token: Arc<Token>,
    pub deadline: Option<Instant>,
    /// The client's socket: a hang-up stops the statement.
    pub peer: Option<Arc<std::net::TcpStream>>,
    /// Held, never read: times the statement until its last clone (its result
    /// stream) is gone.
    pub _timer: Option<Arc<crate::telemetry::StatementTimer>>,
}

/// True once the client has closed its end (EOF or reset); pending bytes
/// (the client's next message) mean it is still there.
fn hung_up(s: &std::net::TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::Interrupted,
    }
}

impl Guard {
    pub fn check(&self) -> Result<(), PgError> {
        if self.token.is_fired() {
            return Err(PgError::cancelled());
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(PgError::timed_out());
        }
        Ok(())
    }

    /// Resolves with the error when the statement is cancelled or times out.
    pub async fn stopped(&self) -> PgError {
        let deadline = self.deadline;
        let sleep = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        let peer = self.peer.clone();
        let gone = async move {
            match peer {
                Some(p) => loop {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    if hung_up(&p) {
                        return;
                    }
                },
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = self.token.fired() => PgError::cancelled(),
            _ = sleep => PgError::timed_out(),
            _ = gone => PgError::fatal("08006", "the client closed the connection during the statement"),
        }
    }

    /// Runs a future unless the statement is stopped first.
    pub async fn run<T>(&self, fut: impl std::future::Future<Output = Result<T, PgError>>) -> Result<T, PgError> {
        self.check()?;
        tokio::select! {
            r = fut => r,
            e = self.stopped() => Err(e),
        }
    }
}
