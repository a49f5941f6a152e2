//! Creation leases: how a composite tells its own interrupted create from
//! another Terraform state's objects.
//!
//! The provider never learns which state it serves, so ownership tags alone
//! cannot say whether an object found under a child's name belongs to an
//! earlier, interrupted attempt of this very create (adopt it) or to a
//! composite some other state recorded (refuse). Every object an apply
//! creates therefore carries a lease tag naming the apply (a random token,
//! the machine, the provider process and its start time, and when the lease
//! lapses). Before the apply hands its state to Terraform, it removes the
//! lease from everything it created or adopted: an object without a lease is
//! recorded in some state and never taken over. An object whose lease names a
//! process that is gone, or a lease that has lapsed, was left by an
//! interrupted create and may be adopted; a live lease belongs to an apply
//! that is running right now (a concurrent create of the same name).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The tag carrying a creation lease while an apply creates the object.
pub const LEASE_TAG: &str = "cxflow:lease";

/// The suffix of a released lease.
const RECORDED: &str = "recorded";
/// Journal entries older than this are pruned.
const JOURNAL_KEEP: Duration = Duration::from_secs(90 * 24 * 3600);

/// One apply's lease.
#[derive(Clone, Debug)]
pub struct Lease {
    /// Random, unique to one apply of one composite.
    pub token: String,
    /// A short hash of the machine (host name and boot).
    pub host: String,
    pub pid: u32,
    /// When the process started (clock ticks since boot; 0 where unknown).
    pub started: u64,
    /// Unix seconds after which the lease has lapsed.
    pub expires: u64,
    /// Whether the token is in this working directory's journal yet.
    journaled: Arc<AtomicBool>,
}

impl PartialEq for Lease {
    fn eq(&self, o: &Lease) -> bool {
        (&self.token, &self.host, self.pid, self.started, self.expires) == (&o.token, &o.host, o.pid, o.started, o.expires)
    }
}

impl Eq for Lease {}

/// The journal of the applies of this working directory's current workspace.
/// Workspaces of one directory are separate states, so each has its own
/// journal: a composite of the same name in another workspace is refused, not
/// taken for this one's interrupted create.
fn journal_dir() -> PathBuf {
    let data = std::env::var_os("TF_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".terraform"));
    data.join("cxflow").join("leases").join(workspace_key(&data))
}

/// The current workspace (`TF_WORKSPACE`, else what `terraform workspace
/// select` wrote to `<data dir>/environment`, else `default`), as a file name.
fn workspace_key(data: &std::path::Path) -> String {
    let name = std::env::var("TF_WORKSPACE")
        .ok()
        .filter(|w| !w.trim().is_empty())
        .or_else(|| std::fs::read_to_string(data.join("environment")).ok().map(|s| s.trim().to_string()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "default".to_string());
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') && name.len() <= 64 { name } else { format!("ws-{}", super::names::short_hash(&name)) }
}

/// Whether an apply in this working directory used `token`.
fn in_journal(token: &str) -> bool {
    !token.is_empty() && token.chars().all(|c| c.is_ascii_hexdigit()) && journal_dir().join(token).exists()
}

/// What a found object's lease says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Created by this very apply (a retried call whose first answer was lost).
    Mine,
    /// Left by an apply that was interrupted: adopt it.
    Abandoned,
    /// An apply that is still running created it (why, for the message).
    Live(String),
    /// No lease: the object is recorded in some Terraform state.
    Recorded,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// This machine, as the leases name it: host name and boot, hashed.
fn host_key() -> String {
    let host = read_trimmed("/proc/sys/kernel/hostname").or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_default();
    let boot = read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    super::names::short_hash(&format!("{host}/{boot}"))
}

/// When process `pid` started (field 22 of /proc/<pid>/stat), if it runs.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(") ")?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Lease {
    /// A fresh lease for an apply that may take up to `limit`.
    pub fn new(limit: Duration) -> Lease {
        let pid = std::process::id();
        let token = format!("{:016x}", fastrand::u64(..) ^ (u64::from(pid) << 32) ^ now_secs());
        Lease { token, host: host_key(), pid, started: process_start(pid).unwrap_or(0), expires: now_secs().saturating_add(limit.as_secs()), journaled: Arc::default() }
    }

    /// Note the token in the working directory's journal (once, before the
    /// first object carrying it is created). Without a data directory the
    /// lease works as before, minus the recovery the journal allows.
    pub fn journal(&self) {
        if self.journaled.swap(true, Ordering::SeqCst) {
            return;
        }
        let dir = journal_dir();
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join(&self.token), self.tag_value())) {
            tracing::warn!(target: "cxflow::engine::lease", error = %e, "could not note the apply in the lease journal");
        }
        // Old entries: their objects were recorded or deleted long ago.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > JOURNAL_KEEP)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// The value a released lease keeps: `<token>/recorded`.
    pub fn recorded_value(&self) -> String {
        format!("{}/{RECORDED}", self.token)
    }

    /// Whether a lease tag value is a released one.
    pub fn is_recorded(tag: &str) -> bool {
        tag.ends_with(&format!("/{RECORDED}"))
    }

    /// The tag value: `<token>/<host>/<pid>/<started>/<expires>`.
    pub fn tag_value(&self) -> String {
        format!("{}/{}/{}/{}/{}", self.token, self.host, self.pid, self.started, self.expires)
    }

    pub fn parse(s: &str) -> Option<Lease> {
        let p: Vec<&str> = s.split('/').collect();
        if p.len() != 5 || p[0].is_empty() {
            return None;
        }
        Some(Lease {
            token: p[0].to_string(),
            host: p[1].to_string(),
            pid: p[2].parse().ok()?,
            started: p[3].parse().ok()?,
            expires: p[4].parse().ok()?,
            journaled: Arc::default(),
        })
    }

    /// Judge the lease tag (if any) of an object carrying our ownership tag.
    pub fn judge(&self, found: Option<&str>) -> Claim {
        let Some(tag) = found else { return Claim::Recorded };
        if let Some(token) = tag.strip_suffix(&format!("/{RECORDED}")) {
            // Released: recorded in a state, unless by an apply of this working directory that died first.
            return if token == self.token || in_journal(token) { Claim::Mine } else { Claim::Recorded };
        }
        // A lease tag no apply wrote (edited by hand): nothing says the object is free.
        let Some(other) = Lease::parse(tag) else { return Claim::Recorded };
        if other.token == self.token || in_journal(&other.token) {
            return Claim::Mine;
        }
        if now_secs() > other.expires {
            return Claim::Abandoned;
        }
        if other.host == self.host {
            // Same machine: the process either still runs (same pid, same start) or is gone.
            return match process_start(other.pid) {
                Some(start) if other.started == 0 || start == other.started => {
                    Claim::Live(format!("another terraform apply is creating it right now (provider process {} on this machine)", other.pid))
                }
                _ => Claim::Abandoned,
            };
        }
        Claim::Live(format!("an apply on another machine is creating it; its lease lapses at {} (Unix time)", other.expires))
    }
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_leases_are_recorded_unless_this_directory_journaled_them() {
        let me = Lease::new(Duration::from_secs(600));
        let other = Lease::new(Duration::from_secs(600));
        assert_eq!(me.judge(Some(&other.recorded_value())), Claim::Recorded);
        assert_eq!(me.judge(Some(&me.recorded_value())), Claim::Mine);
        assert!(Lease::is_recorded(&me.recorded_value()) && !Lease::is_recorded(&me.tag_value()));
    }

    #[test]
    fn each_workspace_has_its_own_journal() {
        let data = tempfile::tempdir().unwrap();
        assert_eq!(workspace_key(data.path()), std::env::var("TF_WORKSPACE").ok().filter(|w| !w.trim().is_empty()).unwrap_or_else(|| "default".into()));
        if std::env::var_os("TF_WORKSPACE").is_none() {
            std::fs::write(data.path().join("environment"), "staging\n").unwrap();
            assert_eq!(workspace_key(data.path()), "staging");
            std::fs::write(data.path().join("environment"), "../x").unwrap();
            assert!(workspace_key(data.path()).starts_with("ws-"));
        }
    }

    #[test]
    fn round_trips_through_its_tag() {
        let l = Lease::new(Duration::from_secs(60));
        assert_eq!(Lease::parse(&l.tag_value()), Some(l.clone()));
        assert!(l.tag_value().len() < 256, "fits a tag value");
        assert_eq!(Lease::parse("garbage"), None);
    }

    #[test]
    fn claims_follow_token_process_and_expiry() {
        let me = Lease::new(Duration::from_secs(600));
        assert_eq!(me.judge(None), Claim::Recorded, "no lease: recorded in some state");
        assert_eq!(me.judge(Some("edited by hand")), Claim::Recorded, "an unreadable lease is never taken as abandoned");
        assert_eq!(me.judge(Some(&me.tag_value())), Claim::Mine);
        // Another apply in this very process (another token): it is alive.
        let other = Lease { token: "other".into(), ..me.clone() };
        assert!(matches!(me.judge(Some(&other.tag_value())), Claim::Live(_)));
        // A process that no longer runs: abandoned.
        let dead = Lease { token: "dead".into(), pid: u32::MAX - 7, ..me.clone() };
        assert_eq!(me.judge(Some(&dead.tag_value())), Claim::Abandoned);
        // The same pid reused by a later process: abandoned.
        let reused = Lease { token: "reused".into(), started: me.started + 1, ..me.clone() };
        assert_eq!(me.judge(Some(&reused.tag_value())), Claim::Abandoned);
        // Another machine: live until the lease lapses.
        let remote = Lease { token: "remote".into(), host: "elsewhere".into(), ..me.clone() };
        assert!(matches!(me.judge(Some(&remote.tag_value())), Claim::Live(_)));
        let lapsed = Lease { expires: 1, ..remote };
        assert_eq!(me.judge(Some(&lapsed.tag_value())), Claim::Abandoned);
    }
}
