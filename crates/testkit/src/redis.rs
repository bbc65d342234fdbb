//! Redis as production runs it, for tests: a TLS server with certificates
//! made here (`openssl`), a Redis Cluster of real `redis-server` nodes, a
//! primary with a replica and sentinels. Every process is on free loopback
//! ports and stopped when dropped; a missing binary fails the test, saying
//! how to install it (`scripts/test` does).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{free_port, RedisServer};

/// Runs a command to completion; panics with its output when it fails.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install it (scripts/test runs apt-get install -y {program})")
        });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A CA, a server certificate for `127.0.0.1` and a client certificate it
/// signed, and a second CA that signed nothing here, in a temporary dir.
#[derive(Debug)]
pub struct TlsFiles {
    dir: tempfile::TempDir,
}

impl TlsFiles {
    /// Makes them with the `openssl` CLI (RSA 2048, valid a day).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = Self { dir };
        for ca in ["ca", "other-ca"] {
            let (key, crt) = (
                files.path(&format!("{ca}.key")),
                files.path(&format!("{ca}.crt")),
            );
            run(
                "openssl",
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-keyout",
                    &key,
                    "-out",
                    &crt,
                    "-subj",
                    &format!("/CN=wxgate test {ca}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        files.sign(
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        );
        files.sign("client", "extendedKeyUsage=clientAuth");
        files
    }

    /// A key and a certificate `name.key`/`name.crt` signed by the CA, with `extensions`.
    fn sign(&self, name: &str, extensions: &str) {
        let (key, csr, crt) = (
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.csr")),
            self.path(&format!("{name}.crt")),
        );
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(&ext, format!("basicConstraints=CA:FALSE\n{extensions}\n")).unwrap();
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN=wxgate test {name}"),
            ],
        );
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &self.path("ca.crt"),
                "-CAkey",
                &self.path("ca.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &crt,
                "-extfile",
                &ext,
            ],
        );
    }

    /// The path of one of its files (`ca.crt`, `server.key`, `client.crt`, `other-ca.crt`…).
    pub fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    /// A file's contents.
    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(file)).unwrap()
    }
}

impl Default for TlsFiles {
    fn default() -> Self {
        Self::new()
    }
}

/// A `redis-server` that speaks TLS on its own port (and plain on another,
/// for the harness), requiring a client certificate signed by the CA.
#[derive(Debug)]
pub struct TlsRedis {
    /// The server.
    pub server: RedisServer,
    /// Its TLS port.
    pub tls_port: u16,
}

impl TlsRedis {
    /// Starts one with `files`' server certificate.
    pub fn start(files: &TlsFiles) -> Self {
        let tls_port = free_port();
        let server = RedisServer::start_with(
            [
                "--tls-port",
                &tls_port.to_string(),
                "--tls-cert-file",
                &files.path("server.crt"),
                "--tls-key-file",
                &files.path("server.key"),
                "--tls-ca-cert-file",
                &files.path("ca.crt"),
                "--tls-auth-clients",
                "yes",
            ]
            .map(str::to_owned)
            .to_vec(),
        );
        Self { server, tls_port }
    }

    /// `rediss://HOST:PORT/0`.
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/0", self.tls_port)
    }
}

/// A Redis Cluster of `redis-server --cluster-enabled yes` primaries, made
/// with `redis-cli --cluster create`, all slots covered when started.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes (each knows its own cluster config file, in `dir`).
    pub nodes: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts `primaries` nodes (each up within 10 s) and joins them.
    pub fn start(primaries: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<RedisServer> = std::thread::scope(|s| {
            let started: Vec<_> = (0..primaries)
                .map(|i| {
                    let conf = dir.path().join(format!("nodes-{i}.conf"));
                    let home = dir.path().display().to_string();
                    s.spawn(move || {
                        let mut args = cluster_args(&conf);
                        args.extend(["--dir".into(), home]);
                        RedisServer::start_with(args)
                    })
                })
                .collect();
            started.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        run("redis-cli", &args);
        let cluster = Self { nodes, _dir: dir };
        // Up to 15 s for every node to see every slot served.
        let ok = (0..300).any(|_| {
            let ok = cluster.nodes.iter().all(|n| {
                run(
                    "redis-cli",
                    &["-p", &n.port().to_string(), "cluster", "info"],
                )
                .contains("cluster_state:ok")
            });
            if !ok {
                std::thread::sleep(Duration::from_millis(50));
            }
            ok
        });
        assert!(ok, "the cluster did not reach cluster_state:ok within 15 s");
        cluster
    }

    /// The seed nodes' URLs, `redis://127.0.0.1:PORT`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect()
    }
}

/// Cluster mode, its config file, and a bus port of its own (the default,
/// port + 10000, may be past 65535 for a port the system handed out).
fn cluster_args(conf: &Path) -> Vec<String> {
    [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &PathBuf::from(conf).display().to_string(),
        "--cluster-port",
        &free_port().to_string(),
        "--cluster-node-timeout",
        "2000",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A primary, a replica and three sentinels monitoring it as `mymaster`
/// (down after 1 s), every sentinel aware of the replica and of the others.
#[derive(Debug)]
pub struct RedisSentinels {
    /// The primary when started, then the replica.
    pub servers: Vec<RedisServer>,
    /// The three sentinels.
    pub sentinels: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

/// The name the sentinels monitor the primary under.
pub const MASTER: &str = "mymaster";

impl RedisSentinels {
    /// Starts them all (in parallel) and waits, up to 20 s, until they are in touch.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let primary = RedisServer::start();
        let port = primary.port();
        let (replica, sentinels) = std::thread::scope(|s| {
            let replica = s.spawn(move || {
                RedisServer::start_with(vec![
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    port.to_string(),
                ])
            });
            let sentinels: Vec<_> = (0..3)
                .map(|i| {
                    let path = dir.path().join(format!("sentinel-{i}.conf"));
                    s.spawn(move || {
                        RedisServer::start_sentinel(&path, |_| {
                            format!(
                                "sentinel monitor {MASTER} 127.0.0.1 {port} 2\n\
                                 sentinel down-after-milliseconds {MASTER} 1000\n\
                                 sentinel failover-timeout {MASTER} 5000\n\
                                 sentinel parallel-syncs {MASTER} 1\n"
                            )
                        })
                    })
                })
                .collect();
            (
                replica.join().unwrap(),
                sentinels
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>(),
            )
        });
        let set = Self {
            servers: vec![primary, replica],
            sentinels,
            _dir: dir,
        };
        let ready = (0..400).any(|_| {
            let ready = set.sentinels.iter().all(|s| {
                let info = run(
                    "redis-cli",
                    &["-p", &s.port().to_string(), "sentinel", "master", MASTER],
                );
                let field = |name: &str| {
                    let mut lines = info.lines();
                    lines
                        .find(|l| *l == name)
                        .and_then(|_| lines.next())
                        .unwrap_or("")
                        .to_owned()
                };
                field("num-slaves") == "1" && field("num-other-sentinels") == "2"
            });
            if !ready {
                std::thread::sleep(Duration::from_millis(50));
            }
            ready
        });
        assert!(
            ready,
            "the sentinels did not see the replica and each other within 20 s"
        );
        set
    }

    /// The sentinels' URLs, `redis://127.0.0.1:PORT`.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port()))
            .collect()
    }

    /// The primary's port as the first sentinel names it.
    pub fn primary_port(&self) -> u16 {
        let out = run(
            "redis-cli",
            &[
                "-p",
                &self.sentinels[0].port().to_string(),
                "sentinel",
                "get-master-addr-by-name",
                MASTER,
            ],
        );
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .expect("a primary's port")
    }

    /// Asks a sentinel to fail over now (`SENTINEL FAILOVER`).
    pub fn failover(&self) {
        // Sentinel refuses (`-NOGOODSLAVE`, `-INPROG`) while it does not
        // yet see the replica as in sync or another failover runs: asked
        // again until it accepts, for up to 20 s (100 × 200 ms, counted in
        // attempts: no clock needed).
        let port = self.sentinels[0].port().to_string();
        let mut reply = String::new();
        for _ in 0..100 {
            reply = run("redis-cli", &["-p", &port, "sentinel", "failover", MASTER]);
            if reply.trim() == "OK" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("SENTINEL FAILOVER was refused for 20 s: {reply}");
    }

    /// The server on `port`.
    pub fn server(&mut self, port: u16) -> &mut RedisServer {
        self.servers
            .iter_mut()
            .find(|s| s.port() == port)
            .expect("one of ours")
    }
}

/// A TCP proxy in front of one Redis that can lose an answer: armed with a
/// pattern, it passes the next command holding it to Redis, then closes the
/// client's connection instead of passing Redis's answer on. So a test
/// knows the command ran and its sender saw the connection drop.
#[derive(Debug)]
pub struct CutProxy {
    port: u16,
    armed: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Listens on a free loopback port, passing everything to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
        let cuts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn({
            let (armed, cuts) = (armed.clone(), cuts.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (armed, cuts) = (armed.clone(), cuts.clone());
                    tokio::spawn(async move {
                        let Ok(server) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                        else {
                            return;
                        };
                        pass(client, server, &armed, &cuts).await;
                    });
                }
            }
        });
        Self {
            port,
            armed,
            cuts,
            task,
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Loses the answer to the next command whose bytes hold `pattern`.
    pub fn lose_answer_to(&self, pattern: &[u8]) {
        *self.armed.lock().unwrap() = Some(pattern.to_vec());
    }

    /// How many answers it lost.
    pub fn cuts(&self) -> usize {
        self.cuts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Passes bytes both ways until either side closes, or until an armed
/// pattern went by: then its answer is dropped with the connection.
async fn pass(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    armed: &std::sync::Mutex<Option<Vec<u8>>>,
    cuts: &std::sync::atomic::AtomicUsize,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_in, mut client_out) = client.into_split();
    let (mut server_in, mut server_out) = server.into_split();
    let cutting = std::sync::atomic::AtomicBool::new(false);
    let requests = async {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match client_in.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            {
                let mut armed = armed.lock().unwrap();
                if armed
                    .as_deref()
                    .is_some_and(|p| chunk.windows(p.len()).any(|w| w == p))
                {
                    *armed = None;
                    // Before Redis has it: its answer cannot go by first.
                    cutting.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            if server_out.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let answers = async {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match server_in.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cutting.load(std::sync::atomic::Ordering::SeqCst) {
                cuts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return;
            }
            if client_out.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = answers => {}
    }
}
