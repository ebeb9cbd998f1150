//! `make run ARGS=--mtls`: a development CA, made afresh each run under
//! `.hearth/tls/`, with a server certificate for 127.0.0.1 and a client certificate
//! for each demo organisation (its URI subject alternative name
//! `urn:hearth:org:<organisation-id>` is what the service checks the token against).
//! The service trusts only this CA for clients; `buf curl` and the demo loader present
//! the certificate of the organisation whose token they send. The plaintext health
//! port serves no reflection (it carries nothing but health), so the health
//! protocol's schema is written beside them for `buf curl --schema`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use hearth_testkit::tls::{Ca, Pem};

use crate::demo::ORGANISATIONS;
use crate::paths::Layout;

/// The files of one run's development PKI.
#[derive(Debug, Clone)]
pub struct DevTls {
    pub dir: PathBuf,
    /// The CA's certificate: the server trusts it for client certificates, clients
    /// for the server's.
    pub ca: PathBuf,
    pub ca_pem: String,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The health protocol's descriptor set, for `buf curl --schema`.
    pub health_schema: PathBuf,
    clients: BTreeMap<String, Client>,
}

#[derive(Debug, Clone)]
struct Client {
    cert: PathBuf,
    key: PathBuf,
    pem: Pem,
}

impl DevTls {
    /// Makes a CA, the server's certificate and one client certificate per demo
    /// organisation, replacing any from an earlier run.
    pub fn generate(layout: &Layout) -> Result<DevTls> {
        let dir = layout.data.join("tls");
        let clients_dir = dir.join("clients");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&clients_dir)
            .with_context(|| format!("cannot create {}", clients_dir.display()))?;
        let ca = Ca::new("Hearth development CA (make run)");
        let ca_file = dir.join("ca.pem");
        let ca_pem = ca.cert_pem();
        std::fs::write(&ca_file, &ca_pem)
            .with_context(|| format!("cannot write {}", ca_file.display()))?;
        let (server_cert, server_key) = write(&ca.server(), &dir, "server")?;
        let health_schema = dir.join("health.binpb");
        std::fs::write(&health_schema, tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_context(|| format!("cannot write {}", health_schema.display()))?;
        let mut clients = BTreeMap::new();
        for (org, _) in ORGANISATIONS {
            let pem = ca.client(org);
            let (cert, key) = write(&pem, &clients_dir, org)?;
            clients.insert((*org).to_owned(), Client { cert, key, pem });
        }
        Ok(DevTls {
            dir,
            ca: ca_file,
            ca_pem,
            server_cert,
            server_key,
            health_schema,
            clients,
        })
    }

    fn client(&self, org: &str) -> Result<&Client> {
        self.clients
            .get(org)
            .with_context(|| format!("no development certificate for organisation {org}"))
    }

    /// `org`'s client certificate and key files.
    pub fn client_files(&self, org: &str) -> Result<(&Path, &Path)> {
        let c = self.client(org)?;
        Ok((&c.cert, &c.key))
    }

    /// `org`'s client certificate and key, as PEM.
    pub fn client_pem(&self, org: &str) -> Result<&Pem> {
        Ok(&self.client(org)?.pem)
    }
}

fn write(pem: &Pem, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf)> {
    pem.write(dir, stem)
        .with_context(|| format!("cannot write {stem}'s certificate into {}", dir.display()))
}
