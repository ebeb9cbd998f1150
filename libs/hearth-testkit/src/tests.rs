use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use sqlx::Connection;

use crate::{NatsOptions, NatsServer, PgOptions, PgServer, shared_pg};

/// A directory name under the temp dir that the test removes itself.
fn temp_path(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "hearth-testkit-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

async fn table_exists(url: &str, table: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn fresh_databases_are_isolated() {
    let pg = PgServer::start(PgOptions::default()).unwrap();
    assert_ne!(pg.port(), 5432);
    assert!(pg.bin_dir().join("pgbench").exists());

    let a = pg.fresh_database().await.unwrap();
    let b = pg.fresh_database().await.unwrap();
    assert_ne!(a, b);

    for url in [&a, &b] {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(one, 1);
    }

    let mut conn = sqlx::PgConnection::connect(&a).await.unwrap();
    sqlx::query("CREATE TABLE only_in_a (id int)")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(table_exists(&a, "only_in_a").await);
    assert!(!table_exists(&b, "only_in_a").await);

    // Creating an existing database is not an error.
    assert_eq!(
        pg.create_database("shared").await.unwrap(),
        pg.url("shared")
    );
    assert_eq!(
        pg.create_database("shared").await.unwrap(),
        pg.url("shared")
    );
}

#[tokio::test]
async fn data_dir_survives_restart() {
    let dir = temp_path("pgdata");
    let opts = PgOptions {
        data_dir: Some(dir.clone()),
        ..PgOptions::default()
    };

    let mut pg = PgServer::start(opts.clone()).unwrap();
    let url = pg.create_database("keep").await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    pg.stop();
    pg.stop(); // idempotent
    drop(pg);
    assert!(dir.join("PG_VERSION").exists(), "data dir must be kept");

    let pg = PgServer::start(opts).unwrap();
    let mut conn = sqlx::PgConnection::connect(&pg.url("keep")).await.unwrap();
    let v: String = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "still here");
    conn.close().await.unwrap();
    drop(pg);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn read_info(port: u16) -> std::io::Result<String> {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line)
}

#[test]
fn nats_stops_and_restarts_on_same_port() {
    let mut nats = NatsServer::start(NatsOptions::default()).unwrap();
    let port = nats.port();
    assert_ne!(port, 4222);
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));
    assert!(nats.is_running());
    let info = read_info(port).unwrap();
    assert!(info.starts_with("INFO {"), "unexpected greeting: {info}");
    assert!(info.contains("\"jetstream\":true"), "no JetStream: {info}");

    nats.stop();
    assert!(!nats.is_running());
    assert!(read_info(port).is_err(), "stopped server still answers");

    nats.restart().unwrap();
    assert!(nats.is_running());
    assert_eq!(nats.port(), port);
    assert!(read_info(port).unwrap().starts_with("INFO {"));
}

#[test]
fn shared_pg_is_shared() {
    let a = shared_pg();
    let b = shared_pg();
    assert_eq!(a.port(), b.port());
    assert!(std::ptr::eq(a, b));
}
