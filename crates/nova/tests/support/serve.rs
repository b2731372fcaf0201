//! `nova serve` as a separate process, for tests that kill it (SIGKILL) and restart it on the
//! same data, or run several replicas on one database. Its log goes to a file in the test's
//! directory, printed when the process does not become ready.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nova_domain::EntityRef;

/// A running `nova serve`.
pub struct Served {
    pub base: String,
    child: Child,
    log: PathBuf,
}

/// The settings every served test uses: listen on `port`, the data under `dir`, the database,
/// a file secret store, short job leases; `extra` is appended (more TOML sections).
pub fn config(dir: &Path, name: &str, port: u16, database: &str, extra: &str) -> PathBuf {
    let d = dir.display();
    super::write_file(
        dir,
        &format!("{name}.toml"),
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{d}/data-{name}\"\n\n[database]\nurl = \"{database}\"\n\n\
             [secrets]\ntype = \"file\"\npath = \"{d}/secrets.enc\"\nkey_file = \"{d}/secrets.key\"\n\n[auth]\nadmin_group = \"{}\"\n\n{extra}",
            super::ADMIN_GROUP
        ),
    )
}

/// The catalog of the served Jenkins tests (crash_safety.rs, replicas.rs): the admin
/// ([`super::ADMIN_USER`]), team-a with alice, and `svc`, built by Jenkins job `team-a/svc-build`.
pub const JENKINS_CATALOG: &str = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: platform}\nspec: {type: team, children: []}\n---\n\
     apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: pat.chen}\nspec: {memberOf: [platform]}\n---\n\
     apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team-a}\nspec: {type: team, children: []}\n---\n\
     apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: alice}\nspec: {memberOf: [team-a]}\n---\n\
     apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc\n  annotations:\n    nova.dev/git-repository: https://git.example.com/team-a/svc.git\n    \
     nova.dev/image-repository: registry.example.com/team-a/svc\n    nova.dev/build-pipeline: \"jenkins:team-a/svc-build\"\nspec: {type: service, lifecycle: production, owner: team-a}\n";

/// The settings of the served Jenkins tests: `locations` refreshed every second, job leases of
/// `lease`, builds polled every 100 ms with limits above 50, and the Jenkins backend `ci` at
/// `jenkins_url` signing in as `nova` with the token in `token_file`.
pub fn jenkins_settings(locations: &[String], lease: Duration, jenkins_url: &str, token_file: &Path) -> String {
    format!(
        "[catalog]\nlocations = {locations:?}\nrefresh_interval = \"1s\"\n\n[jobs]\nlease = \"{}ms\"\npoll_interval = \"100ms\"\n\n\
         [builds]\npoll_interval = \"100ms\"\nmax_active_per_team = 100\nmax_requests_per_user = 100\n\n\
         [build_backends.ci]\ntype = \"jenkins\"\nurl = \"{jenkins_url}\"\nuser = \"nova\"\ntoken = {{ file = \"{}\" }}\n",
        lease.as_millis(),
        token_file.display()
    )
}

/// Migrates `database` and makes an API token for `user` (whom the catalog will know).
pub async fn token(database: &str, user: &str) -> String {
    let db = nova::storage::Db::connect(database, 2).await.unwrap();
    db.migrate().await.unwrap();
    let user = EntityRef::parse(user).unwrap();
    let token = nova::auth::TokenStore::new(db.clone()).create(&user, "test", None, true).await.unwrap().0.expose().clone();
    db.pool().close().await;
    token
}

impl Served {
    /// Starts `nova serve --config CONFIG` listening on `port`, and waits until `/ready`.
    pub async fn start(config: &Path, port: u16) -> Self {
        let log = config.with_extension(format!("{}.log", uuid::Uuid::new_v4().simple()));
        let child = Command::new(env!("CARGO_BIN_EXE_nova"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("NOVA_LOG__FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("nova serve starts");
        let served = Self { base: format!("http://127.0.0.1:{port}"), child, log };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if client.get(served.url("/ready")).send().await.is_ok_and(|r| r.status() == 200) {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nova serve did not become ready:\n{}", served.log_text());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The process id (job leases name their owner by it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for the graceful stop.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `nova` subcommand to its end: (success, stdout and stderr).
pub fn nova(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nova")).args(args).output().expect("nova runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
