//! Test support: real local AWS emulators (moto, ministack) provisioned and
//! started by the tests themselves, SDK clients pointed at them, and a
//! loopback capture server for what no emulator forwards.
//!
//! Provisioning: a venv under `target/tmp/emulators-venv` with pinned
//! versions, created on first use. Each emulator runs in its own process
//! group on a free 127.0.0.1 port and is killed (with everything it spawned)
//! when its handle drops, also when a test fails. A missing emulator is a
//! panic, never a skip.

#![allow(dead_code)]

pub mod fixtures;
pub mod functions;
pub mod setup;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};

pub const MOTO: &str = "moto[server]==5.2.5";
pub const MINISTACK: &str = "ministack==1.5.33";
/// Lints `deploy/template.yaml`.
pub const CFN_LINT: &str = "cfn-lint==1.58.0";
/// Lets ministack apply the SAM transform to `deploy/template.yaml`.
pub const SAM_TRANSLATOR: &str = "aws-sam-translator==1.115.0";

/// The venv with both emulators, created once per test process.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("emulators-venv");
        let marker = venv.join("pinned.txt");
        let wanted = format!("{MOTO}\n{MINISTACK}\n{CFN_LINT}\n{SAM_TRANSLATOR}\n");
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
            return venv;
        }
        eprintln!(
            "provisioning emulators into {} ({MOTO}, {MINISTACK}, {CFN_LINT}, {SAM_TRANSLATOR})",
            venv.display()
        );
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MOTO,
            MINISTACK,
            CFN_LINT,
            SAM_TRANSLATOR,
        ]));
        std::fs::write(&marker, wanted).expect("write venv marker");
        venv
    })
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An SDK config for `endpoint` (test credentials, us-east-1).
pub async fn sdk_config_for(endpoint: String) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .endpoint_url(endpoint)
        .test_credentials()
        .load()
        .await
}

/// A running emulator. Dropping it kills its whole process group.
pub struct Emulator {
    pub name: &'static str,
    pub port: u16,
    child: Child,
    log: PathBuf,
    cleanup: Vec<PathBuf>,
}

impl Emulator {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An SDK config for this emulator (test credentials, us-east-1).
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(self.endpoint()).await
    }

    /// A path-style S3 client for this emulator (virtual-host style would
    /// need DNS for `<bucket>.127.0.0.1`).
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
                .force_path_style(true)
                .build(),
        )
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        log[log
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| i >= start)
            .unwrap_or(0)..]
            .to_owned()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The emulator leads its own process group (`process_group(0)`), so
        // signalling the group reaches the function processes it spawned.
        let pid = self.child.id() as i32;
        assert!(pid > 1, "refusing to signal process group {pid}");
        let group = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (function processes included).
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
        for path in &self.cleanup {
            let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
        }
    }
}

fn spawn(
    name: &'static str,
    mut cmd: Command,
    port: u16,
    health: &str,
    cleanup: Vec<PathBuf>,
) -> Emulator {
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{port}.log"));
    let file = std::fs::File::create(&log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .process_group(0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let emulator = Emulator {
        name,
        port,
        child,
        log,
        cleanup,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http_status(port, health) == Some(200) {
            return emulator;
        }
        assert!(
            Instant::now() < deadline,
            "{name} on port {port} not ready in 60 s:\n{}",
            emulator.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 32];
    let n = stream.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// moto in server mode (SQS, SNS, ...).
pub fn start_moto() -> Emulator {
    let port = free_port();
    let mut cmd = Command::new(venv().join("bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    spawn("moto", cmd, port, "/", Vec::new())
}

/// ministack: Lambda (`provided.al2023` run as local processes), SQS, SNS,
/// CloudWatch Logs on one port.
pub fn start_ministack() -> Emulator {
    let port = free_port();
    let mut cmd = Command::new(venv().join("bin/ministack"));
    cmd.env("BIND_HOST", "127.0.0.1")
        .env("GATEWAY_PORT", port.to_string())
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    let cleanup = vec![
        PathBuf::from(format!("/tmp/ministack-provided-code-{port}")),
        PathBuf::from(format!("/tmp/ministack-{port}.pid")),
    ];
    spawn("ministack", cmd, port, "/_ministack/health", cleanup)
}

/// Path of a built example binary: the one `cargo test` built next to this
/// test binary, else a build of our own in a separate target dir (a nested
/// `cargo build` on the main target dir would wait on cargo's build lock).
/// `cargo test --test X` alone does not rebuild examples: after changing one,
/// run plain `cargo test` (or `cargo build --examples`) first.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let built = profile_dir.join("examples").join(name);
    // `cargo test` builds the examples; a narrower run (`--test x`) leaves
    // an older one behind, which is used only when nothing changed since.
    let fresh = modified(&built).is_some_and(|built| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = root.join("examples").join(format!("{name}.rs"));
        [root.join("src"), example, root.join("Cargo.toml")]
            .iter()
            .all(|source| newest(source).is_some_and(|newest| newest <= built))
    });
    if fresh {
        return built;
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-build");
    run(Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--all-features", "--example", name, "--target-dir"])
        .arg(&target));
    target.join("debug/examples").join(name)
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of `path` or any file under it.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let own = modified(path)?;
    let Ok(entries) = std::fs::read_dir(path) else {
        return Some(own);
    };
    Some(
        entries
            .filter_map(|e| newest(&e.ok()?.path()))
            .fold(own, std::cmp::max),
    )
}

/// A zip holding `binary` as an executable `bootstrap` (stripped), built with
/// the venv's Python (no zip crate needed).
pub fn bootstrap_zip(binary: &Path) -> Vec<u8> {
    let dir = tempdir("bootstrap");
    let bootstrap = dir.join("bootstrap");
    std::fs::copy(binary, &bootstrap).unwrap();
    let _ = Command::new("strip").arg(&bootstrap).status();
    let zip = dir.join("function.zip");
    run(Command::new(venv().join("bin/python"))
        .current_dir(&dir)
        .args(["-c", "import zipfile,sys\nz=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED)\ni=zipfile.ZipInfo('bootstrap')\ni.external_attr=0o755<<16\ni.compress_type=zipfile.ZIP_DEFLATED\nz.writestr(i,open('bootstrap','rb').read())\nz.close()"])
        .arg(&zip));
    let bytes = std::fs::read(&zip).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

pub fn tempdir(prefix: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Creates the on-demand DynamoDB table `name` with the string partition
/// key `key`.
pub async fn create_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str, key: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// One HTTP request as the capture server saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }
}

/// A loopback HTTP/1.1 server that records each request and answers
/// `200` with `response_body` (JSON). Stops when dropped.
pub struct CaptureServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Captured>>>,
    refuse: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CaptureServer {
    pub async fn start(response_body: &'static str) -> CaptureServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let refuse: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (seen, refusing) = (requests.clone(), refuse.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, refusing) = (seen.clone(), refusing.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, seen, refusing, response_body).await;
                });
            }
        });
        CaptureServer {
            port,
            requests,
            refuse,
            task,
        }
    }

    /// Answers the next `n` requests `429 TooManyRequestsException` (they
    /// are still recorded), as a throttled Lambda `Invoke` is answered.
    pub fn throttle_next(&self, n: usize) {
        self.refuse.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An SDK config whose every call lands on this server.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(self.endpoint()).await
    }

    pub fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    seen: Arc<Mutex<Vec<Captured>>>,
    refusing: Arc<std::sync::atomic::AtomicUsize>,
    response_body: &'static str,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    loop {
        // Read one request: headers, then Content-Length bytes.
        let header_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < header_end + 4 + len {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[header_end + 4..header_end + 4 + len].to_vec();
        buf.drain(..header_end + 4 + len);
        seen.lock().unwrap().push(Captured {
            request_line,
            headers,
            body,
        });
        let throttled = refusing
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        let response = if throttled {
            let body = r#"{"__type":"TooManyRequestsException","message":"Rate exceeded"}"#;
            format!(
                "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
                 x-amzn-ErrorType: TooManyRequestsException\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                response_body.len(),
                response_body
            )
        };
        stream.write_all(response.as_bytes()).await?;
    }
}
