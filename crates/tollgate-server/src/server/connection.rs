//! What a client connection may cost, the same on every listener (check API, proxy, Envoy
//! service): how many are open at once, how long a client may take to send a request, and
//! how long a connection may stay idle between requests.
//!
//! - [`CappedListener`] accepts a connection only while fewer than `max_connections` are
//!   open; more wait in the kernel's accept queue.
//! - [`TimedIo`] is the accepted socket. Its reads fail (and the server closes it) when the
//!   connection's [`Activity`] says the client took too long: `header_timeout` from
//!   connecting until the first request is complete (on HTTP/1.1, also from the first byte of
//!   each following request), `keepalive_timeout` while no request is in flight. While a
//!   request is in flight, no timer of the connection runs: a slow handler (a slow upstream
//!   behind the proxy) keeps its connection; the request body has its own deadline
//!   (`http/limits.rs`) and the proxy its upstream timeouts. A client that takes nothing of
//!   its answer for `body_timeout` (its socket full) is closed, in any phase. On HTTP/2 a
//!   client can take nothing of an answer without filling the socket, by leaving its
//!   flow-control window shut: there an answer under way ([`InFlight::answering`]) must be
//!   taken whole within `body_timeout` of its head, else the connection is closed.
//! - A request is in flight from its head until its response body is done: [`Activity::start`]
//!   gives the [`InFlight`] guard, which [`InFlightBody`] holds until the body ends.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::Connections;

/// Which protocol a listener speaks, for what counts as the start of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.1: the first byte after an idle spell starts the next request, whose head must
    /// then be complete within `header_timeout`.
    Http1,
    /// HTTP/2 (gRPC): frames such as PING arrive while idle and start no request.
    Http2,
}

/// A listener that holds at most `max_connections` connections at once.
pub(crate) struct CappedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    limits: Connections,
    protocol: Protocol,
}

impl CappedListener {
    pub(crate) fn new(listener: TcpListener, limits: Connections, protocol: Protocol) -> Self {
        Self {
            listener,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            protocol,
        }
    }

    /// Waits for a free place, then for a connection. Accept errors (out of descriptors and
    /// the like) are logged and retried a little later, never returned: the listener stays.
    pub(crate) async fn accept(&self) -> (TimedIo, SocketAddr) {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let activity = Arc::new(Activity::new(self.limits, self.protocol));
                    return (TimedIo::new(stream, activity, permit), peer);
                }
                Err(err) => {
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Where a connection stands, for its timers.
enum Phase {
    /// Waiting for a request's head, which must be complete by `deadline`.
    Head { deadline: Instant },
    /// `requests` requests in flight: no timer.
    Busy { requests: usize },
    /// No request in flight; the connection closes at `deadline`.
    Idle { deadline: Instant },
}

struct ActivityState {
    phase: Phase,
    /// The task reading the socket, woken when the last request in flight ends (its idle
    /// timer starts then), or when an answer's deadline is the first to run.
    reader: Option<Waker>,
    /// The answers under way that must be taken by a deadline ([`InFlight::answering`]),
    /// by the order they began: each deadline is its head's time plus `body_timeout`, so
    /// the first is the earliest.
    answers: BTreeMap<u64, Instant>,
    /// The key of the next answer in `answers`.
    next_answer: u64,
}

/// A connection's timers, shared by its socket and its requests.
pub(crate) struct Activity {
    limits: Connections,
    protocol: Protocol,
    state: Mutex<ActivityState>,
}

impl Activity {
    fn new(limits: Connections, protocol: Protocol) -> Self {
        Self {
            limits,
            protocol,
            state: Mutex::new(ActivityState {
                phase: Phase::Head {
                    deadline: Instant::now() + limits.header_timeout,
                },
                reader: None,
                answers: BTreeMap::new(),
                next_answer: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // The state is a few words, written whole; a panic elsewhere leaves it consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request has arrived (its head is complete): the connection's timers stop until the
    /// returned guard, and every other one, is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.phase = match state.phase {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
        };
        InFlight {
            activity: Arc::clone(self),
            answer: None,
        }
    }

    /// An answer begins: it must be taken whole within `body_timeout`. Returns its key in
    /// `answers`.
    fn answering(&self) -> u64 {
        let mut state = self.lock();
        let key = state.next_answer;
        state.next_answer += 1;
        let first = state.answers.is_empty();
        state
            .answers
            .insert(key, Instant::now() + self.limits.body_timeout);
        if first && let Some(reader) = state.reader.take() {
            reader.wake(); // to arm its timer for this deadline
        }
        key
    }

    fn end(&self, answer: Option<u64>) {
        let mut state = self.lock();
        if let Some(answer) = answer {
            state.answers.remove(&answer);
        }
        if let Phase::Busy { requests } = state.phase {
            state.phase = if requests > 1 {
                Phase::Busy {
                    requests: requests - 1,
                }
            } else {
                Phase::Idle {
                    deadline: Instant::now() + self.limits.keepalive_timeout,
                }
            };
            if requests == 1
                && let Some(reader) = state.reader.take()
            {
                reader.wake();
            }
        }
    }

    /// Bytes have been read: on HTTP/1.1, the first after an idle spell start a request; and
    /// the reader is no longer waiting, so the end of the request wakes it only if a read
    /// waits again before then. hyper reads again by itself once an answer is written unless
    /// its last read waited, and that read arms the idle timer: waking the connection's own
    /// task at the end of every request would only poll it once more for nothing.
    fn read_some(&self) {
        if self.protocol == Protocol::Http1 {
            let mut state = self.lock();
            state.reader = None;
            if let Phase::Idle { .. } = state.phase {
                state.phase = Phase::Head {
                    deadline: Instant::now() + self.limits.header_timeout,
                };
            }
        }
    }

    /// When the connection times out (and why), if nothing is read before; `None` while a
    /// request is in flight. `reader` is woken when that changes.
    fn deadline(&self, reader: &Waker) -> Option<(Instant, &'static str)> {
        let mut state = self.lock();
        if !state
            .reader
            .as_ref()
            .is_some_and(|known| known.will_wake(reader))
        {
            state.reader = Some(reader.clone());
        }
        match state.phase {
            Phase::Head { deadline } => {
                Some((deadline, "no complete request within header_timeout"))
            }
            Phase::Idle { deadline } => Some((deadline, "idle for keepalive_timeout")),
            Phase::Busy { .. } => state.answers.first_key_value().map(|(_, &deadline)| {
                (
                    deadline,
                    "the client took not all of an answer within body_timeout",
                )
            }),
        }
    }
}

/// A request in flight on a connection, until dropped.
pub(crate) struct InFlight {
    activity: Arc<Activity>,
    /// Its key in the connection's answers under way, once answering.
    answer: Option<u64>,
}

impl InFlight {
    /// The request's answer begins: from now the client must take it whole within
    /// `body_timeout`, else the connection is closed. For HTTP/2, where a client can hold
    /// an answer by leaving its flow-control window shut and no write ever waits; an
    /// HTTP/1.1 client that stops reading fills its socket, which the writes time.
    pub(crate) fn answering(mut self) -> Self {
        if self.answer.is_none() {
            self.answer = Some(self.activity.answering());
        }
        self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.end(self.answer);
    }
}

/// A response body that keeps its request in flight until it ends (or is dropped).
pub(crate) struct InFlightBody<B> {
    inner: B,
    in_flight: Option<InFlight>,
}

impl<B> InFlightBody<B> {
    pub(crate) fn new(inner: B, in_flight: Option<InFlight>) -> Self {
        Self { inner, in_flight }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for InFlightBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = frame {
            self.in_flight = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An accepted socket whose reads fail once its [`Activity`] says the client took too long;
/// it holds its place under `max_connections` until dropped.
pub(crate) struct TimedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    sleep: Pin<Box<Sleep>>,
    /// The deadline `sleep` is set to.
    armed: Instant,
    /// Set while a write waits for the client to take what was sent: past `body_timeout`
    /// without progress, writes fail.
    stalled: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl TimedIo {
    fn new(inner: TcpStream, activity: Arc<Activity>, permit: OwnedSemaphorePermit) -> Self {
        let armed = Instant::now() + activity.limits.header_timeout;
        Self {
            inner,
            activity,
            sleep: Box::pin(tokio::time::sleep_until(armed)),
            armed,
            stalled: None,
            _permit: permit,
        }
    }

    /// The connection's timers, for its requests.
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.read_some();
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => {}
        }
        let Some((deadline, why)) = this.activity.deadline(cx.waker()) else {
            return Poll::Pending;
        };
        if this.armed != deadline {
            this.sleep.as_mut().reset(deadline);
            this.armed = deadline;
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl TimedIo {
    /// `written`, or, while the client takes nothing for `body_timeout`, an error.
    fn stall_checked<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if written.is_ready() {
            self.stalled = None;
            return written;
        }
        let body_timeout = self.activity.limits.body_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(body_timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing of its answer within body_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.stall_checked(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.stall_checked(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        self.stall_checked(cx, flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// On the gRPC listener, each request finds its connection's [`Activity`] in its extensions.
impl tonic::transport::server::Connected for TimedIo {
    type ConnectInfo = Arc<Activity>;

    fn connect_info(&self) -> Arc<Activity> {
        Arc::clone(&self.activity)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Waker;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Activity, Protocol};
    use crate::config::Connections;

    fn limits() -> Connections {
        Connections {
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            ..Connections::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timers_run_only_while_no_request_is_in_flight() {
        let activity = Arc::new(Activity::new(limits(), Protocol::Http1));
        let waker = Waker::noop();
        let start = Instant::now();
        let (deadline, why) = activity.deadline(waker).expect("a head deadline");
        assert_eq!(
            (deadline - start, why),
            (
                Duration::from_secs(10),
                "no complete request within header_timeout"
            )
        );
        let first = activity.start();
        let second = activity.start();
        assert_eq!(activity.deadline(waker), None);
        drop(first);
        assert_eq!(
            activity.deadline(waker),
            None,
            "one request still in flight"
        );
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(second);
        let (deadline, why) = activity.deadline(waker).expect("an idle deadline");
        assert_eq!(deadline - start, Duration::from_secs(160));
        assert_eq!(why, "idle for keepalive_timeout");
        // On HTTP/1.1 the next request's first byte starts its header_timeout.
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.read_some();
        let (deadline, _) = activity.deadline(waker).expect("a head deadline");
        assert_eq!(deadline - start, Duration::from_secs(115));
    }

    /// A waker that counts its wakes.
    struct Counted(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// On HTTP/1.1 the end of a request wakes the reader only if a read waited after the
    /// request's bytes came (hyper reads again by itself otherwise, arming the idle timer).
    #[tokio::test(start_paused = true)]
    async fn an_http1_request_end_wakes_the_reader_only_if_a_read_waited_during_it() {
        let activity = Arc::new(Activity::new(limits(), Protocol::Http1));
        let counted = Arc::new(Counted(Default::default()));
        let waker = Waker::from(Arc::clone(&counted));
        let wakes = || counted.0.load(std::sync::atomic::Ordering::Relaxed);
        activity.deadline(&waker).expect("a head deadline"); // a read waited
        activity.read_some(); // the request came
        drop(activity.start());
        assert_eq!(wakes(), 0, "the reader reads again by itself");
        activity.read_some();
        let request = activity.start();
        assert_eq!(
            activity.deadline(&waker),
            None,
            "a read waits during the request"
        );
        drop(request);
        assert_eq!(wakes(), 1, "woken to arm the idle timer");
        assert!(activity.deadline(&waker).is_some(), "an idle deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn answers_under_way_must_be_taken_within_the_body_timeout() {
        let limits = Connections {
            body_timeout: Duration::from_secs(5),
            ..limits()
        };
        let activity = Arc::new(Activity::new(limits, Protocol::Http2));
        let start = Instant::now();
        let first = activity.start().answering();
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = activity.start().answering();
        let (deadline, why) = activity
            .deadline(Waker::noop())
            .expect("an answer deadline");
        assert_eq!(deadline - start, Duration::from_secs(5));
        assert_eq!(
            why,
            "the client took not all of an answer within body_timeout"
        );
        drop(first);
        let (deadline, _) = activity
            .deadline(Waker::noop())
            .expect("an answer deadline");
        assert_eq!(deadline - start, Duration::from_secs(6), "the second's");
        // A request not yet answering runs no timer.
        let third = activity.start();
        drop(second);
        assert_eq!(activity.deadline(Waker::noop()), None);
        drop(third);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_while_idle_start_no_request() {
        let activity = Arc::new(Activity::new(limits(), Protocol::Http2));
        drop(activity.start());
        let (idle, _) = activity.deadline(Waker::noop()).expect("an idle deadline");
        activity.read_some();
        assert_eq!(
            activity.deadline(Waker::noop()).map(|(at, _)| at),
            Some(idle)
        );
    }
}
