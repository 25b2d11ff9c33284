//! Stopping the browser login runner with everything it started, so no
//! Chromium outlives a cancelled, timed-out or abandoned login. The runner
//! leads a process group of its own; Playwright starts Chromium detached,
//! which makes the browser lead another group. Stopping signals the
//! runner's group and the group of every process that descends from the
//! runner or runs on the login's profile directory (read from `/proc`;
//! elsewhere only the runner's group is known).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Child;

/// How long the runner has to close its browser after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);
/// How long killed processes may take to go away before giving up waiting.
const KILL_WAIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);

/// The runner process (leader of its own group) and the profile directory
/// its browser runs on.
pub(super) struct RunnerProcesses {
    runner: libc::pid_t,
    profile: PathBuf,
    /// The runner was waited for: its pid may be reused, so its tree is no
    /// longer looked up.
    reaped: bool,
}

impl RunnerProcesses {
    /// `runner` is the runner's pid (its process group id too).
    pub(super) fn new(runner: Option<u32>, profile: &Path) -> RunnerProcesses {
        RunnerProcesses {
            runner: runner
                .and_then(|pid| libc::pid_t::try_from(pid).ok())
                .unwrap_or(0),
            profile: profile.to_owned(),
            reaped: false,
        }
    }

    /// Records that the runner exited and was waited for.
    pub(super) fn reaped(&mut self) {
        self.reaped = true;
    }

    /// Stops the runner and its browser: SIGTERM to every group (the runner
    /// closes its browser), then, after a grace period, SIGKILL to whatever
    /// is left, and waits until those processes are gone.
    pub(super) async fn stop(&mut self, child: &mut Child) {
        let groups = self.groups();
        signal_groups(&groups, libc::SIGTERM);
        let _ = tokio::time::timeout(GRACE, child.wait()).await;
        // Looked up again: the browser may have started helpers meanwhile.
        let mut leftovers = self.groups();
        leftovers.extend(groups);
        signal_groups(&leftovers, libc::SIGKILL);
        let _ = child.wait().await;
        self.reaped = true;
        wait_until_gone(&leftovers).await;
    }

    /// The process groups to signal (never the bridge's own).
    fn groups(&self) -> BTreeSet<libc::pid_t> {
        let table = process_table();
        let mut groups = BTreeSet::new();
        if self.runner > 0 && !self.reaped {
            groups.insert(self.runner);
            let mut parents = vec![self.runner];
            while let Some(parent) = parents.pop() {
                for (pid, process) in &table {
                    if process.parent == parent {
                        groups.insert(process.group);
                        parents.push(*pid);
                    }
                }
            }
        }
        let profile = self.profile.as_os_str().as_encoded_bytes();
        for (pid, process) in &table {
            if process.state != 'Z' && command_line_mentions(*pid, profile) {
                groups.insert(process.group);
            }
        }
        // SAFETY: getpgrp(2) and getpid(2) cannot fail and touch no memory.
        let (own_group, own_pid) = unsafe { (libc::getpgrp(), libc::getpid()) };
        groups.retain(|group| *group > 1 && *group != own_group && *group != own_pid);
        groups
    }
}

impl Drop for RunnerProcesses {
    /// A login abandoned mid-way (its task dropped) still takes its browser along.
    fn drop(&mut self) {
        signal_groups(&self.groups(), libc::SIGKILL);
    }
}

fn signal_groups(groups: &BTreeSet<libc::pid_t>, signal: libc::c_int) {
    for group in groups {
        // SAFETY: kill(2) on a process group found just before; it touches
        // no memory. A group that is gone already gives ESRCH, ignored.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// Waits (briefly) until no live process is left in `groups`.
async fn wait_until_gone(groups: &BTreeSet<libc::pid_t>) {
    let waiting = async {
        while process_table()
            .values()
            .any(|process| process.state != 'Z' && groups.contains(&process.group))
        {
            tokio::time::sleep(POLL).await;
        }
    };
    if tokio::time::timeout(KILL_WAIT, waiting).await.is_err() {
        tracing::warn!("processes of the browser login runner are still running after SIGKILL");
    }
}

/// What `/proc/<pid>/stat` says of a process.
struct ProcessEntry {
    state: char,
    parent: libc::pid_t,
    group: libc::pid_t,
}

/// Every process `/proc` shows (empty where there is no `/proc`).
fn process_table() -> BTreeMap<libc::pid_t, ProcessEntry> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&stat)?))
        })
        .collect()
}

/// `pid (comm) state ppid pgrp ...`; the command name may hold spaces and
/// parentheses, so fields are read after the last `)`.
fn parse_stat(stat: &str) -> Option<ProcessEntry> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some(ProcessEntry {
        state,
        parent,
        group,
    })
}

fn command_line_mentions(pid: libc::pid_t, needle: &[u8]) -> bool {
    !needle.is_empty()
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.windows(needle.len()).any(|part| part == needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_after_the_command_name() {
        let entry = parse_stat("4242 (chrome (renderer) x) S 17 4200 4200 0 -1 4194560").unwrap();
        assert_eq!((entry.state, entry.parent, entry.group), ('S', 17, 4200));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn this_process_is_in_the_table_and_never_a_group_to_signal() {
        let own_pid = libc::pid_t::try_from(std::process::id()).unwrap();
        assert!(process_table().contains_key(&own_pid));
        let exe = std::env::current_exe().unwrap();
        assert!(command_line_mentions(
            own_pid,
            exe.as_os_str().as_encoded_bytes()
        ));
        // Our own command line mentions the test binary: still not signalled.
        let processes = RunnerProcesses {
            runner: 0,
            profile: exe,
            reaped: true,
        };
        // SAFETY: getpgrp(2) cannot fail.
        let own_group = unsafe { libc::getpgrp() };
        assert!(!processes.groups().contains(&own_group));
        // Dropping would SIGKILL what it found: nothing of this test's.
        std::mem::forget(processes);
    }
}
