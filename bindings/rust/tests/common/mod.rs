// common/mod.rs: what every numbered test uses: temporary directories, nbdkit started as a child
// on a private Unix socket (or a free TCP port) and stopped by its pid, one that can be killed
// and started again on the same socket, and closure counters.
#![allow(dead_code)]

use std::ffi::c_int;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

// errno values (Linux) the tests compare with.
pub const EIO: i32 = 5;
pub const EBUSY: i32 = 16;
pub const EINVAL: i32 = 22;
pub const ERANGE: i32 = 34;
pub const ENOTCONN: i32 = 107;
pub const ETIMEDOUT: i32 = 110;
pub const ECANCELED: i32 = 125;

pub const MIB: u64 = 1024 * 1024;

/// Whether nbdkit can run here; a test without it prints why and passes.
pub fn have_nbdkit() -> bool {
    let ok = Command::new("nbdkit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: nbdkit is not installed");
    }
    ok
}

/// A private directory under the system's temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("nbd-rust-{}-{}", std::process::id(), n));
        std::fs::create_dir(&path).expect("create the test's temporary directory");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

extern "C" {
    fn kill(pid: c_int, sig: c_int) -> c_int;
}
const SIGKILL: c_int = 9;
const SIGTERM: c_int = 15;

/// An nbdkit child serving one export.  It reports readiness through a pipe: `--run` starts a
/// shell once nbdkit listens, which prints a line and then waits on nbdkit's stdin (ours).
pub struct Nbdkit {
    child: Child,
    stdin: Option<ChildStdin>,
    pub uri: String,
    pub socket: Option<PathBuf>,
    pub port: Option<u16>,
    _dir: TempDir,
}

impl Nbdkit {
    /// nbdkit ARGS on a Unix socket in a fresh temporary directory.
    pub fn unix(args: &[&str]) -> Nbdkit {
        let dir = TempDir::new();
        let socket = dir.path().join("sock");
        let listen = vec!["-U".to_owned(), socket.display().to_string()];
        let mut s = Nbdkit::start(dir, &listen, args).expect("nbdkit did not start");
        s.socket = Some(socket);
        s
    }

    /// nbdkit ARGS on 127.0.0.1 and a port that was free a moment ago (retried if taken).
    pub fn tcp(args: &[&str]) -> Nbdkit {
        let mut why = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let listen =
                vec!["-i".to_owned(), "127.0.0.1".to_owned(), "-p".to_owned(), port.to_string()];
            match Nbdkit::start(TempDir::new(), &listen, args) {
                Ok(mut s) => {
                    s.port = Some(port);
                    return s;
                }
                Err(e) => why = e,
            }
        }
        panic!("nbdkit did not start on TCP: {why}");
    }

    fn start(dir: TempDir, listen: &[String], args: &[&str]) -> Result<Nbdkit, String> {
        let mut child = Command::new("nbdkit")
            .args(["-f", "--exit-with-parent"])
            .args(listen)
            .args(args)
            .args(["--run", "echo \"$uri\"; read line"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run nbdkit: {e}"))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap_or(0);
        let uri = line.trim().to_owned();
        if uri.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("nbdkit {} exited before it was ready", args.join(" ")));
        }
        Ok(Nbdkit { child, stdin, uri, socket: None, port: None, _dir: dir })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nbdkit {
    fn drop(&mut self) {
        // The --run shell ends when its stdin closes; nbdkit itself is stopped by its pid.  A
        // server that still has a client may take its time, so it gets 5 s before SIGKILL
        // (the server process then follows through --exit-with-parent).
        drop(self.stdin.take());
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
        unsafe { kill(self.pid() as c_int, SIGTERM) };
        for _ in 0..500 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nbdkit serving a file of its own on a Unix socket, without `--run`, so that the test can
/// kill it with SIGKILL and start it again on the same socket with the same data: for tests of
/// reconnection (nbd_set_reconnect_delay).
pub struct Restartable {
    child: Option<Child>,
    args: Vec<String>,
    pub uri: String,
    dir: TempDir,
}

impl Restartable {
    /// `nbdkit [FILTERS...] file DISK [PARAMS...]` on a zeroed disk of `size` bytes: `filters`
    /// go before the plugin, `params` after it.
    pub fn file(size: u64, filters: &[&str], params: &[&str]) -> Restartable {
        let dir = TempDir::new();
        let disk = dir.path().join("disk");
        std::fs::File::create(&disk).and_then(|f| f.set_len(size)).expect("create the disk");
        let socket = dir.path().join("sock");
        let mut args: Vec<String> =
            ["-f", "--exit-with-parent", "-P"].iter().map(|a| a.to_string()).collect();
        args.push(dir.path().join("pid").display().to_string());
        args.extend(["-U".to_owned(), socket.display().to_string()]);
        args.extend(filters.iter().map(|a| a.to_string()));
        args.extend(["file".to_owned(), disk.display().to_string()]);
        args.extend(params.iter().map(|a| a.to_string()));
        let uri = format!("nbd+unix:///?socket={}", socket.display());
        let mut s = Restartable { child: None, args, uri, dir };
        s.start();
        s
    }

    /// Starts the server (again), once the old one is gone; returns once it listens, that is
    /// once it has written its pidfile.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the server still runs");
        // nbdkit leaves both behind when killed, and binds the socket anew.
        let pidfile = self.dir.path().join("pid");
        let _ = std::fs::remove_file(&pidfile);
        let _ = std::fs::remove_file(self.dir.path().join("sock"));
        let mut child = Command::new("nbdkit")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run nbdkit");
        for _ in 0..1000 {
            if std::fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty()) {
                self.child = Some(child);
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nbdkit {} exited ({status}) before it was ready", self.args.join(" "));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nbdkit {} wrote no pidfile within 5 s", self.args.join(" "));
    }

    /// Kills the server with SIGKILL and reaps it: its clients see their connection reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { kill(child.id() as c_int, SIGKILL) };
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again at once.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh nbdkit serving ARGS on a Unix socket and a handle connected to it.  Bind them in
/// this order, `let (_server, h) = connected(..)`, so that the handle is dropped first.
pub fn connected(args: &[&str]) -> (Nbdkit, nbd::Handle) {
    let server = Nbdkit::unix(args);
    let h = nbd::Handle::new().unwrap();
    h.connect_uri(&server.uri).unwrap();
    (server, h)
}

/// Counts drops of the values it hands out: a closure that captures one is freed when its
/// count goes up.
#[derive(Clone, Default)]
pub struct DropCounter(Arc<AtomicUsize>);

pub struct Token(Arc<AtomicUsize>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl DropCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn token(&self) -> Token {
        Token(Arc::clone(&self.0))
    }

    pub fn dropped(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A byte pattern that differs at every offset of a few MiB.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((offset + i) * 7 % 251) as u8).collect()
}
