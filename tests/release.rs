//! Release artifacts end to end: scripts/release.sh packs and signs the real
//! provider binary with a GPG key made for the test; gpg and sha256sum check
//! the signature and checksums; then the real Terraform CLI installs the
//! release (no dev_overrides) from
//!   - a filesystem mirror in the packed layout, recording the package's h1:
//!     hash in the lock file and refusing a tampered archive afterwards, and
//!   - a static registry (the provider registry protocol as plain files on a
//!     local HTTP server), where Terraform itself verifies the GPG signature
//!     of SHA256SUMS and records the zip's zh: hash.
//!
//! Each installed provider then plans an empty configuration.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const NAME: &str = "terraform-provider-cxflow";
/// A prerelease version: Terraform mirrors and registries accept them under an exact constraint.
const VERSION: &str = "0.0.1-test";

// ---------------------------------------------------------------------------
// gpg

/// A throwaway GNUPGHOME; its gpg-agent is stopped and the directory removed on drop.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Gpg {
        // Short path under /tmp: gpg-agent's socket path has a length limit.
        let home = tempfile::Builder::new().prefix("cxgpg").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(home.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        Gpg { home }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path()).args(["--batch", "--no-tty"]).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        self.cmd().args(args).output().expect("run gpg (installed by scripts/bootstrap.sh)").into()
    }

    /// Generate an ed25519 signing key; returns its fingerprint.
    fn gen_key(&self, uid: &str, passphrase: &str) -> String {
        self.run(&["--pinentry-mode", "loopback", "--passphrase", passphrase, "--quick-gen-key", uid, "ed25519", "sign", "never"]).expect_ok("gpg --quick-gen-key");
        let listing = self.run(&["--with-colons", "--list-secret-keys", uid]);
        listing.expect_ok("gpg --list-secret-keys");
        let fpr = listing.stdout.lines().find(|l| l.starts_with("fpr:")).and_then(|l| l.split(':').nth(9)).expect("fingerprint").to_string();
        assert_eq!(fpr.len(), 40, "unexpected fingerprint {fpr:?}");
        fpr
    }

    fn export_secret(&self, fpr: &str, passphrase: &str) -> String {
        let r = self.run(&["--pinentry-mode", "loopback", "--passphrase", passphrase, "--armor", "--export-secret-keys", fpr]);
        r.expect_ok("gpg --export-secret-keys");
        assert!(r.stdout.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"), "not an armored secret key: {}", r.stdout);
        r.stdout
    }

    fn export_public(&self, fpr: &str) -> String {
        let r = self.run(&["--armor", "--export", fpr]);
        r.expect_ok("gpg --export");
        assert!(r.stdout.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        r.stdout
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").env("GNUPGHOME", self.home.path()).args(["--kill", "all"]).output();
    }
}

// ---------------------------------------------------------------------------
// release.sh

/// Run scripts/release.sh with a clean signing environment plus `env`,
/// packaging the test's provider binary into `dist`.
fn release(version: &str, dist: &Path, env: &[(&str, &str)]) -> Run {
    let mut c = Command::new("bash");
    c.arg(repo_root().join("scripts/release.sh")).arg(version).current_dir(repo_root()).stdin(Stdio::null());
    for k in ["CXFLOW_GPG_KEY_FILE", "CXFLOW_GPG_PRIVATE_KEY", "CXFLOW_GPG_PASSPHRASE", "CXFLOW_GPG_KEY_ID", "CXFLOW_RELEASE_TARGETS", "GNUPGHOME"] {
        c.env_remove(k);
    }
    c.env("CXFLOW_RELEASE_BINARY", provider_binary()).env("CXFLOW_DIST_DIR", dist);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run scripts/release.sh").into()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn artifact(version: &str, suffix: &str) -> String {
    format!("{NAME}_{version}_{suffix}")
}

// ---------------------------------------------------------------------------
// hashes (computed independently of Terraform, with sha256sum)

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

fn zip_entries(zip: &Path) -> Vec<String> {
    let out = Command::new("unzip").arg("-Z1").arg(zip).output().expect("unzip");
    assert!(out.status.success(), "unzip -Z1 {}: {}", zip.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

fn zip_member(zip: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("unzip").arg("-p").arg(zip).arg(name).output().expect("unzip -p");
    assert!(out.status.success());
    out.stdout
}

/// Terraform's "h1:" package hash (Go's dirhash Hash1) of a zip: sha256 over
/// the sorted lines "<sha256 hex of file>  <name>\n", base64-encoded.
fn h1_of_zip(zip: &Path) -> String {
    use base64::Engine as _;
    let mut names = zip_entries(zip);
    names.retain(|n| !n.ends_with('/'));
    names.sort();
    let mut summary = String::new();
    for n in &names {
        summary.push_str(&format!("{}  {n}\n", sha256_hex(&zip_member(zip, n))));
    }
    format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(hex_bytes(&sha256_hex(summary.as_bytes()))))
}

/// The hashes the lock file records for cxflow/cxflow.
fn locked_hashes(lock: &str) -> Vec<String> {
    let start = lock.find("provider \"registry.terraform.io/cxflow/cxflow\"").unwrap_or_else(|| panic!("no cxflow entry in lock file:\n{lock}"));
    let block = &lock[start..];
    let block = &block[..block.find("\n}").unwrap_or(block.len())];
    block.split('"').filter(|s| s.starts_with("h1:") || s.starts_with("zh:")).map(str::to_string).collect()
}

/// Terraform wraps messages at 78 columns: compare with whitespace collapsed.
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// Terraform working directories

fn configuration(version: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    cxflow = {{\n      source  = \"cxflow/cxflow\"\n      version = \"= {version}\"\n    }}\n  }}\n}}\n\n\
         provider \"cxflow\" {{\n  region                      = \"us-east-1\"\n  skip_credentials_validation = true\n}}\n"
    )
}

/// A working directory whose CLI configuration is `cli` (replacing the harness's dev_overrides).
fn workdir(terraform: &Path, cli: &str, version: &str) -> Workdir {
    let mut wd = Workdir::new(terraform, None);
    let path = wd.path().join("install.tfrc");
    std::fs::write(&path, cli).unwrap();
    wd.env.insert("TF_CLI_CONFIG_FILE".into(), path.display().to_string());
    wd.write("main.tf", &configuration(version));
    wd
}

fn filesystem_mirror_cli(mirror: &Path) -> String {
    format!("provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/cxflow/cxflow\"]\n  }}\n}}\n", mirror.display())
}

/// A packed-layout filesystem mirror holding one zip.
fn packed_mirror(root: &Path, zip: &Path, version: &str) -> PathBuf {
    let dir = root.join("registry.terraform.io/cxflow/cxflow");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(zip, dir.join(artifact(version, "linux_amd64.zip"))).unwrap();
    root.to_path_buf()
}

#[track_caller]
fn assert_installed_from_package(wd: &Workdir, init: &Run, version: &str) {
    assert!(init.stdout.contains(&format!("Installed cxflow/cxflow v{version}")), "init did not install the release:\n{}", init.all());
    assert!(!init.all().contains("Provider development overrides are in effect"), "dev_overrides leaked in:\n{}", init.all());
    let installed = wd.path().join(format!(".terraform/providers/registry.terraform.io/cxflow/cxflow/{version}/linux_amd64/{NAME}_v{version}"));
    assert!(installed.is_file(), "{} is missing after init", installed.display());
}

#[track_caller]
fn assert_plans_cleanly(wd: &Workdir) {
    let plan = wd.plan_code();
    assert_eq!(plan.code, 0, "plan with the installed provider failed:\n{}", plan.all());
    assert!(plan.stdout.contains("No changes"), "unexpected plan output:\n{}", plan.all());
}

// ---------------------------------------------------------------------------
// A static provider registry: discovery is pointed at it by a CLI `host` block
// and every protocol response is a file served by Python's http.server.

struct StaticRegistry {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl StaticRegistry {
    /// Lay out the registry protocol for `version` from `dist`: the version list,
    /// the linux_amd64 download document (naming `signing_key`) and the artifacts.
    fn start(dist: &Path, version: &str, signing_key: (&str, &str), replace_zip: Option<&Path>) -> StaticRegistry {
        let root = tempfile::Builder::new().prefix("cxflow-registry-").tempdir().unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dist.join(artifact(version, "manifest.json"))).unwrap()).unwrap();
        let protocols = manifest["metadata"]["protocol_versions"].clone();
        assert!(protocols.is_array(), "manifest without protocol_versions: {manifest}");

        let files = root.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        for name in [artifact(version, "linux_amd64.zip"), artifact(version, "SHA256SUMS"), artifact(version, "SHA256SUMS.sig")] {
            std::fs::copy(dist.join(&name), files.join(&name)).unwrap();
        }
        let zip_name = artifact(version, "linux_amd64.zip");
        if let Some(z) = replace_zip {
            std::fs::copy(z, files.join(&zip_name)).unwrap();
        }
        let sums = std::fs::read_to_string(dist.join(artifact(version, "SHA256SUMS"))).unwrap();
        let shasum = sums.lines().find(|l| l.ends_with(&zip_name)).and_then(|l| l.split_whitespace().next()).expect("zip in SHA256SUMS").to_string();

        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let api = root.path().join("v1/providers/cxflow/cxflow");
        std::fs::create_dir_all(api.join(format!("{version}/download/linux"))).unwrap();
        let versions = serde_json::json!({"versions": [{"version": version, "protocols": protocols, "platforms": [{"os": "linux", "arch": "amd64"}]}]});
        std::fs::write(api.join("versions"), versions.to_string()).unwrap();
        let (fpr, armor) = signing_key;
        let download = serde_json::json!({
            "protocols": protocols,
            "os": "linux",
            "arch": "amd64",
            "filename": zip_name,
            "download_url": format!("{base}/files/{zip_name}"),
            "shasums_url": format!("{base}/files/{}", artifact(version, "SHA256SUMS")),
            "shasums_signature_url": format!("{base}/files/{}", artifact(version, "SHA256SUMS.sig")),
            "shasum": shasum,
            "signing_keys": {"gpg_public_keys": [{"key_id": &fpr[fpr.len() - 16..], "ascii_armor": armor}]},
        });
        std::fs::write(api.join(format!("{version}/download/linux/amd64")), download.to_string()).unwrap();

        let python = repo_root().join(".tools/venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/bootstrap.sh", python.display());
        let child = Command::new(&python)
            .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python http.server");
        let mut reg = StaticRegistry { child, port, _root: root };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", reg.port)).is_err() {
            if let Ok(Some(status)) = reg.child.try_wait() {
                panic!("http.server exited early: {status}");
            }
            assert!(start.elapsed() < Duration::from_secs(30), "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// CLI configuration sending registry.terraform.io's provider API here.
    fn cli(&self) -> String {
        format!("host \"registry.terraform.io\" {{\n  services = {{\n    \"providers.v1\" = \"http://127.0.0.1:{}/v1/providers/\"\n  }}\n}}\n", self.port)
    }
}

impl Drop for StaticRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// tests

#[test]
fn release_refuses_bad_versions_and_a_missing_key() {
    let dist = tempfile::tempdir().unwrap();
    for bad in ["1.2", "v1.2.3", "01.2.3", "1.2.3+build.5", "1.2.3-01", "latest", ""] {
        let r = release(bad, dist.path(), &[("CXFLOW_GPG_PRIVATE_KEY", "irrelevant")]);
        assert!(!r.ok(), "release.sh accepted version {bad:?}:\n{}", r.all());
        assert!(r.stderr.contains("usage") || r.stderr.contains("VERSION"), "no explanation for {bad:?}:\n{}", r.all());
    }
    let r = release("1.2.3", dist.path(), &[]);
    assert!(!r.ok(), "release.sh ran without a signing key:\n{}", r.all());
    assert!(r.stderr.contains("no signing key") && r.stderr.contains("CXFLOW_GPG_KEY_FILE") && r.stderr.contains("CXFLOW_GPG_PRIVATE_KEY"), "{}", r.all());
    let r = release("1.2.3", dist.path(), &[("CXFLOW_GPG_KEY_FILE", "/nonexistent/key.asc")]);
    assert!(!r.ok() && r.stderr.contains("not a readable file"), "{}", r.all());
    let r = release("1.2.3", dist.path(), &[("CXFLOW_GPG_PRIVATE_KEY", "not a key")]);
    assert!(!r.ok() && r.stderr.contains("could not import"), "{}", r.all());
    assert!(file_names(dist.path()).is_empty(), "failed runs left files: {:?}", file_names(dist.path()));
}

#[test]
fn release_signs_with_a_passphrase_protected_key_file() {
    let gpg = Gpg::new();
    let pass = "correct horse battery staple";
    let fpr = gpg.gen_key("cxflow protected <protected@example.com>", pass);
    let keydir = tempfile::tempdir().unwrap();
    let keyfile = keydir.path().join("secret.asc");
    std::fs::write(&keyfile, gpg.export_secret(&fpr, pass)).unwrap();
    let keyfile = keyfile.display().to_string();
    let dist = tempfile::tempdir().unwrap();

    let missing = release("2.0.0", dist.path(), &[("CXFLOW_GPG_KEY_FILE", &keyfile)]);
    assert!(!missing.ok() && missing.stderr.contains("CXFLOW_GPG_PASSPHRASE"), "signing without the passphrase:\n{}", missing.all());
    let wrong = release("2.0.0", dist.path(), &[("CXFLOW_GPG_KEY_FILE", &keyfile), ("CXFLOW_GPG_PASSPHRASE", "wrong")]);
    assert!(!wrong.ok(), "signing with a wrong passphrase succeeded:\n{}", wrong.all());
    assert!(file_names(dist.path()).is_empty(), "a failed signing left files: {:?}", file_names(dist.path()));

    release("2.0.0", dist.path(), &[("CXFLOW_GPG_KEY_FILE", &keyfile), ("CXFLOW_GPG_PASSPHRASE", pass)]).expect_ok("release.sh with a key file");
    let sums = dist.path().join(artifact("2.0.0", "SHA256SUMS"));
    let v = gpg.run(&["--status-fd", "1", "--verify", &format!("{}.sig", sums.display()), &sums.display().to_string()]);
    v.expect_ok("gpg --verify");
    assert!(v.stdout.contains(&format!("VALIDSIG {fpr}")), "not signed by {fpr}:\n{}", v.all());
}

#[test]
fn signed_release_installs_through_a_mirror_and_a_registry() {
    let gpg = Gpg::new();
    let fpr = gpg.gen_key("cxflow test <t@example.com>", "");
    let secret = gpg.export_secret(&fpr, "");
    let public = gpg.export_public(&fpr);
    let dist = tempfile::tempdir().unwrap();
    let d = dist.path();

    let out = release(VERSION, d, &[("CXFLOW_GPG_PRIVATE_KEY", &secret)]);
    out.expect_ok("scripts/release.sh");

    // --- the artifacts ---
    let zip = d.join(artifact(VERSION, "linux_amd64.zip"));
    let manifest = artifact(VERSION, "manifest.json");
    let sums = artifact(VERSION, "SHA256SUMS");
    let sig = artifact(VERSION, "SHA256SUMS.sig");
    let mut want = vec![artifact(VERSION, "linux_amd64.zip"), manifest.clone(), sums.clone(), sig.clone()];
    want.sort();
    assert_eq!(file_names(d), want);

    let exe = format!("{NAME}_v{VERSION}");
    assert_eq!(zip_entries(&zip), vec![exe.clone()], "the zip must hold exactly the versioned binary");
    assert!(zip_member(&zip, &exe) == std::fs::read(provider_binary()).unwrap(), "the zipped binary differs from the provider binary");
    let listing = Command::new("unzip").arg("-Z").arg(&zip).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.lines().any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(&exe)), "the binary is not stored executable:\n{listing}");

    let shipped: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join(&manifest)).unwrap()).unwrap();
    assert_eq!(shipped, serde_json::json!({"version": 1, "metadata": {"protocol_versions": ["6.0"]}}));
    assert_eq!(std::fs::read(d.join(&manifest)).unwrap(), std::fs::read(repo_root().join("terraform-registry-manifest.json")).unwrap());

    let sums_text = std::fs::read_to_string(d.join(&sums)).unwrap();
    let covered: Vec<&str> = sums_text.lines().map(|l| l.split("  ").nth(1).unwrap_or("")).collect();
    assert_eq!(covered, vec![artifact(VERSION, "linux_amd64.zip"), manifest.clone()], "SHA256SUMS lines:\n{sums_text}");
    let zip_sha = sha256_hex(&std::fs::read(&zip).unwrap());
    assert!(sums_text.starts_with(&format!("{zip_sha}  ")), "{sums_text}");
    let check = Command::new("sha256sum").args(["-c", &sums]).current_dir(d).output().unwrap();
    assert!(check.status.success(), "sha256sum -c: {}", String::from_utf8_lossy(&check.stdout));

    let sig_bytes = std::fs::read(d.join(&sig)).unwrap();
    assert!(!sig_bytes.starts_with(b"-----BEGIN"), "the signature must be binary, not armored");
    let v = gpg.run(&["--status-fd", "1", "--verify", &d.join(&sig).display().to_string(), &d.join(&sums).display().to_string()]);
    v.expect_ok("gpg --verify");
    assert!(v.stdout.contains(&format!("VALIDSIG {fpr}")), "not signed by the test key:\n{}", v.all());
    // The signature covers SHA256SUMS: a changed byte must break it.
    let forged = tempfile::tempdir().unwrap();
    let forged_sums = forged.path().join(&sums);
    std::fs::write(&forged_sums, sums_text.replacen(&zip_sha[..1], if zip_sha.starts_with('0') { "1" } else { "0" }, 1)).unwrap();
    let bad = gpg.run(&["--verify", &d.join(&sig).display().to_string(), &forged_sums.display().to_string()]);
    assert!(!bad.ok(), "gpg accepted a modified SHA256SUMS:\n{}", bad.all());

    let h1 = h1_of_zip(&zip);
    let zh = format!("zh:{zip_sha}");
    let signed_zh: Vec<String> = sums_text.lines().map(|l| format!("zh:{}", l.split("  ").next().unwrap())).collect();

    // A tampered copy: the same zip with one more file in it.
    let tampered_dir = tempfile::tempdir().unwrap();
    let tampered = tampered_dir.path().join(artifact(VERSION, "linux_amd64.zip"));
    std::fs::copy(&zip, &tampered).unwrap();
    std::fs::write(tampered_dir.path().join("EXTRA.txt"), "not part of the release\n").unwrap();
    let z = Command::new("zip").arg("-q").arg(&tampered).arg("EXTRA.txt").current_dir(tampered_dir.path()).output().unwrap();
    assert!(z.status.success(), "zip: {}", String::from_utf8_lossy(&z.stderr));
    assert_ne!(h1_of_zip(&tampered), h1);

    for tf in terraform_clients() {
        // --- filesystem mirror, packed layout ---
        let mirror_dir = tempfile::tempdir().unwrap();
        let mirror = packed_mirror(mirror_dir.path(), &zip, VERSION);
        let wd = workdir(&tf, &filesystem_mirror_cli(&mirror), VERSION);
        let init = wd.tf(&["init", "-input=false"]);
        init.expect_ok("terraform init from the filesystem mirror");
        assert_installed_from_package(&wd, &init, VERSION);
        let lock = wd.read(".terraform.lock.hcl");
        assert!(lock.contains(&format!("version     = \"{VERSION}\"")), "lock file:\n{lock}");
        // A mirror is not signed, so Terraform records only the hash it computed itself.
        assert_eq!(locked_hashes(&lock), vec![h1.clone()], "lock file:\n{lock}");
        assert_plans_cleanly(&wd);

        // The same lock file against a mirror holding the tampered zip.
        let bad_mirror_dir = tempfile::tempdir().unwrap();
        let bad_mirror = packed_mirror(bad_mirror_dir.path(), &tampered, VERSION);
        let wd2 = workdir(&tf, &filesystem_mirror_cli(&bad_mirror), VERSION);
        wd2.write(".terraform.lock.hcl", &lock);
        let init2 = wd2.tf(&["init", "-input=false"]);
        init2.expect_fail("terraform init of a tampered package");
        assert!(
            flat(&init2.all()).contains("doesn't match any of the checksums previously recorded in the dependency lock file"),
            "not a lock-file checksum failure:\n{}",
            init2.all()
        );
        assert!(!wd2.path().join(format!(".terraform/providers/registry.terraform.io/cxflow/cxflow/{VERSION}")).exists(), "the tampered package was installed");

        // --- static registry: Terraform verifies the signature itself ---
        let reg = StaticRegistry::start(d, VERSION, (&fpr, &public), None);
        let wd3 = workdir(&tf, &reg.cli(), VERSION);
        let init3 = wd3.tf(&["init", "-input=false"]);
        init3.expect_ok("terraform init from the static registry");
        assert_installed_from_package(&wd3, &init3, VERSION);
        assert!(init3.stdout.contains(&format!("(self-signed, key ID {})", &fpr[24..])), "signature not verified by Terraform:\n{}", init3.all());
        let lock3 = wd3.read(".terraform.lock.hcl");
        let mut hashes = locked_hashes(&lock3);
        hashes.sort();
        assert!(hashes.contains(&zh), "the lock file lacks the zip's checksum {zh}:\n{lock3}");
        // Terraform trusts the whole signed SHA256SUMS: one zh: per line, plus its own h1:.
        let mut want = signed_zh.clone();
        want.push(h1.clone());
        want.sort();
        assert_eq!(hashes, want, "lock file:\n{lock3}");
        assert_plans_cleanly(&wd3);

        // The registry advertising another key: the signature no longer verifies.
        let other = Gpg::new();
        let other_fpr = other.gen_key("someone else <else@example.com>", "");
        let reg_wrong_key = StaticRegistry::start(d, VERSION, (&other_fpr, &other.export_public(&other_fpr)), None);
        let wd4 = workdir(&tf, &reg_wrong_key.cli(), VERSION);
        let init4 = wd4.tf(&["init", "-input=false"]);
        init4.expect_fail("terraform init with a signature from an unadvertised key");
        assert!(flat(&init4.all()).contains("authentication signature from unknown issuer"), "not a signature failure:\n{}", init4.all());

        // The registry serving the tampered zip under the genuine signed checksums.
        let reg_tampered = StaticRegistry::start(d, VERSION, (&fpr, &public), Some(&tampered));
        let wd5 = workdir(&tf, &reg_tampered.cli(), VERSION);
        let init5 = wd5.tf(&["init", "-input=false"]);
        init5.expect_fail("terraform init of a tampered zip from the registry");
        let tampered_zh = format!("zh:{}", sha256_hex(&std::fs::read(&tampered).unwrap()));
        assert!(flat(&init5.all()).contains(&format!("archive has incorrect checksum {tampered_zh} (expected {zh})")), "not a checksum failure:\n{}", init5.all());
    }
}
