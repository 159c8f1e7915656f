//! Starting child processes that die with the test process, however it dies: one
//! spawner for the Postgres servers, pgbouncer and the daemons.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;

/// Has the kernel send `sig` to the command's process when the thread that spawned it
/// ends (Linux; elsewhere nothing). For tools that the spawning thread waits for
/// (`initdb`, `psql`), that is when the test dies; servers go through
/// [`spawn_long_lived`].
pub(crate) fn die_with_parent(cmd: &mut Command, sig: libc::c_int) {
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the forked child before exec and only makes the
    // async-signal-safe prctl system call.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, sig);
}

/// Spawns a server from a thread that lives as long as the process, with a
/// parent-death signal: the server is stopped when the test process dies, however it
/// dies (the signal is sent when the *thread* that forked it ends, hence the thread).
pub(crate) fn spawn_long_lived(mut cmd: Command, death_signal: libc::c_int) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();

    die_with_parent(&mut cmd, death_signal);

    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the testkit spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?;
    reply_rx.recv().map_err(|_| io::Error::other("testkit spawner thread is gone"))?
}
