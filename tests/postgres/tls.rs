//! TLS to Postgres, with libpq's `sslmode` parsed by the daemon: `require` connects,
//! `verify-full` connects with the right CA and refuses a server signed by another,
//! leaving the daemon ready from its files with a clear error in the log.

use crate::helpers::{cluster_with, failed_writes, put_ok, row, seen, toml_str, wait_for, wait_for_row, Conf, DB};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tiercache_testkit::{PgCluster, PgOptions};

fn openssl(dir: &Path, args: &[&str]) {
    let out =
        Command::new("openssl").current_dir(dir).args(args).output().expect("run openssl (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`NAME.pem`, `NAME.key`) made in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=tiercache test {name}"),
            "-keyout",
            &key,
            "-out",
            &pem,
        ],
    );
    dir.join(pem)
}

/// A server certificate for `localhost` and `127.0.0.1` signed by the CA `ca`; returns
/// (certificate, key).
fn make_server_cert(dir: &Path, ca: &str) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    (dir.join("server.pem"), dir.join("server.key"))
}

/// Whether the daemon's connections (application_name `tiercache`) use TLS.
fn daemon_connections_use_tls(pg: &PgCluster) -> bool {
    pg.psql(
        DB,
        "SELECT count(*) > 0 AND bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'tiercache'",
    )
    .unwrap()
        == "t"
}

#[test]
fn sslmode_require_and_verify_full() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let ca = make_ca(dir, "ca");
    let wrong_ca = make_ca(dir, "wrong-ca");
    let (cert, key) = make_server_cert(dir, "ca");
    // hostssl only: a connection without TLS would be refused.
    let pg = cluster_with(PgOptions::new().tls(&cert, &key).hostssl_only(true));
    let port = pg.tcp_addr().expect("TCP with TLS").port();

    // require: encrypted, no verification.
    let d = Conf::new(pg.tcp_url(DB, "postgres")).postgres("sslmode = \"require\"").caches(&["t"]).start();
    let (v, _) = put_ok(&d, "t", &json!({"via": "require"}));
    wait_for_row(&pg, "default", "t", v, &json!({"via": "require"}));
    assert!(daemon_connections_use_tls(&pg), "the daemon's connections are not TLS");
    drop(d);

    // verify-full with the right CA, host name `localhost` (in the certificate).
    let url = format!("postgres://postgres@localhost:{port}/{DB}");
    let d = Conf::new(&url)
        .postgres(&format!("sslmode = \"verify-full\"\nssl_root_cert = {}", toml_str(&ca.display().to_string())))
        .caches(&["t"])
        .start();
    let (v, _) = put_ok(&d, "t", &json!({"via": "verify-full"}));
    wait_for_row(&pg, "default", "t", v, &json!({"via": "verify-full"}));
    assert!(daemon_connections_use_tls(&pg));
    drop(d);

    // The same URL given libpq-style (sslmode and sslrootcert in the URL) works too.
    let d = Conf::new(format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display())).caches(&["t"]).start();
    let (v, _) = put_ok(&d, "t", &json!({"via": "url parameters"}));
    wait_for_row(&pg, "default", "t", v, &json!({"via": "url parameters"}));
    drop(d);

    // verify-full with a CA that did not sign the server's certificate: refused. The
    // daemon is ready from its files, acknowledges saves, logs a clear error, and
    // nothing reaches Postgres.
    let before = row(&pg, "t").unwrap();
    let d = Conf::new(&url)
        .postgres(&format!("sslmode = \"verify-full\"\nssl_root_cert = {}", toml_str(&wrong_ca.display().to_string())))
        .caches(&["t"])
        .start();
    assert_eq!(d.get("/readyz", &[]).status, 200);
    let line = d.wait_for_log("with an error about the certificate", Duration::from_secs(10), |l| {
        l["level"] == "ERROR" && l["error"].as_str().is_some_and(|e| e.to_lowercase().contains("certificate"))
    });
    eprintln!("the refusal is logged as: {line}");
    let (v, _) = put_ok(&d, "t", &json!({"via": "wrong CA"}));
    // The save was tried and refused before the row is checked.
    wait_for("the save's attempt to fail", Duration::from_secs(10), || {
        let failed = failed_writes(&d);
        seen(failed, failed >= 1.0)
    });
    assert_eq!(row(&pg, "t").unwrap(), before, "a save went through an unverified connection (version {v})");
    assert!(!daemon_connections_use_tls(&pg), "no connection of the daemon may be open");
}
