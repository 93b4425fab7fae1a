//! Child processes (our binaries, the baseline, the broker) and what /proc
//! says about them: CPU time, current and peak resident memory.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// CPU time and memory of one process, from /proc (Linux).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// utime + stime of all threads, in seconds.
    pub cpu_secs: f64,
    /// VmRSS, bytes.
    pub rss: u64,
    /// VmHWM (peak RSS since start or since the last [`reset_peak_rss`]), bytes.
    pub hwm: u64,
    /// `write_bytes` of /proc/PID/io: bytes the process caused to be written
    /// to storage (page cache pages it dirtied, counted once per dirtying);
    /// 0 when the file cannot be read.
    pub write_bytes: u64,
}

/// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Reads /proc/PID/stat and /proc/PID/status; `pid` 0 means this process.
pub fn sample(pid: u32, ticks: f64) -> Option<ProcSample> {
    let dir = if pid == 0 {
        "/proc/self".to_string()
    } else {
        format!("/proc/{pid}")
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let kib = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Some(ProcSample {
        cpu_secs: (utime + stime) / ticks,
        rss: kib("VmRSS:"),
        hwm: kib("VmHWM:"),
        write_bytes: io_write_bytes(&dir).unwrap_or(0),
    })
}

/// `write_bytes` of `DIR/io` (DIR: /proc/PID).
fn io_write_bytes(dir: &str) -> Option<u64> {
    let io = std::fs::read_to_string(format!("{dir}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Flush requests completed by the block device holding `path` (field 18 of
/// /proc/diskstats, Linux ≥ 5.5): one per `fdatasync` that reached a disk
/// with a write cache, plus the file system's journal commits, from every
/// process on the machine.
pub fn disk_flushes(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    stats.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 18 && f[0] == major.to_string() && f[1] == minor.to_string())
            .then(|| f[18].parse().ok())
            .flatten()
    })
}

/// The value of the unlabelled sample `name` in Prometheus text `text`.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`, Linux ≥ 4.0),
/// so the next reading is the peak of the coming run only.
pub fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the loopback interface has free ports")
}

/// A free loopback address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A child process, SIGKILLed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `binary args` in `dir` with `env`, on `cpus` (a `taskset -c` list)
    /// when given, logging to `dir/NAME.log`.
    pub fn start(
        name: &str,
        dir: &Path,
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
        cpus: Option<&str>,
    ) -> anyhow::Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        // taskset execs the program, so the child's pid is the program's.
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the log's tail if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); log tail:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until `probe` says yes, the process dies, or `timeout` passes.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> bool,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if probe() {
                return Ok(started.elapsed());
            }
            self.check_alive()?;
            if started.elapsed() > timeout {
                bail!(
                    "{} not {what} within {timeout:?}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sample(&self, ticks: f64) -> ProcSample {
        sample(self.pid(), ticks).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when something accepts connections on `addr`.
pub fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Status of `GET path` on `addr`, over a fresh connection.
pub fn http_get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    http_get(addr, path).map(|(status, _)| status)
}

/// `GET path` on `addr`: status and body (read until the server closes).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Finds `name` on PATH or in `~/.cargo/bin` (where `cargo install` puts it).
pub fn which(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Restricts every thread of this process to `cpus` (`taskset -a -p -c`).
/// The bench forbids `unsafe`, which `sched_setaffinity` would need.
pub fn pin_self(cpus: &str) -> bool {
    Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(0, clock_ticks()).unwrap();
        assert!(s.rss > 0 && s.hwm >= s.rss);
    }

    #[test]
    fn reads_metric_values() {
        let text = "# TYPE a_total counter\na_total 12\na_total_x 3\nb{x=\"1\"} 4\n";
        assert_eq!(metric_value(text, "a_total"), Some(12.0));
        assert_eq!(metric_value(text, "b"), None);
        assert_eq!(metric_value(text, "c"), None);
    }
}
