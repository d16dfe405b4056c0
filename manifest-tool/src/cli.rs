//! Command-line definitions. Man pages and completions are generated from
//! these (packaging issue).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Sign and verify charter releases: keys, trust roots, manifests, blobs.
#[derive(Debug, Parser)]
#[command(name = "charter", version, about, max_term_width = 100)]
pub struct Cli {
    /// Print results as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// Read private-key passphrases from this file (mode 0600; first line).
    /// Otherwise CHARTER_PASSPHRASE, otherwise a prompt on the terminal.
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate keys and print public keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Create, sign, rotate and verify trust roots (root.json).
    #[command(subcommand)]
    Root(RootCmd),
    /// Create, sign and verify release manifests.
    #[command(subcommand)]
    Manifest(ManifestCmd),
    /// Publish and sign channel pointers.
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// Lay out and check a static release repository.
    #[command(subcommand)]
    Repo(RepoCmd),
    /// Follow a channel's phased rollout.
    #[command(subcommand)]
    Rollout(RolloutCmd),
    /// Issue licenses and status documents; inspect them.
    #[command(subcommand)]
    License(LicenseCmd),
    /// Encrypt secret values in host configs (enc:v1), rotate the master key.
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Hash every file of a directory (sha256sum format, or --json entries).
    HashTree(HashTreeArgs),
    /// Sign a file: prints a base64 Ed25519 signature (as cosign sign-blob).
    SignBlob(SignBlobArgs),
    /// Verify a base64 Ed25519 signature over a file.
    VerifyBlob(VerifyBlobArgs),
    /// This build: version, commit, date, target, features.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Generate an Ed25519 key pair: private key (PKCS#8 PEM, encrypted,
    /// mode 0600) at --out, public key (SPKI PEM) at --out.pub.
    Generate {
        /// Where to write the private key (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Write the private key unencrypted. Anyone who can read the file
        /// can sign releases.
        #[arg(long)]
        unencrypted: bool,
    },
    /// Print the public key (PEM) and key id of a private or public key file.
    Public {
        /// Key file.
        file: PathBuf,
    },
}

/// Keys and thresholds of every role.
#[derive(Debug, Args, Clone)]
pub struct RoleArgs {
    /// Public key file (or private key file) of a root key; repeat for more.
    #[arg(long = "root-key", value_name = "FILE")]
    pub root_keys: Vec<PathBuf>,
    /// Signatures needed from root keys.
    #[arg(long, value_name = "N")]
    pub root_threshold: Option<u32>,
    /// Public key file of a release key; repeat for more.
    #[arg(long = "release-key", value_name = "FILE")]
    pub release_keys: Vec<PathBuf>,
    /// Signatures needed from release keys.
    #[arg(long, value_name = "N")]
    pub release_threshold: Option<u32>,
    /// Public key file of a channel key; repeat for more.
    #[arg(long = "channel-key", value_name = "FILE")]
    pub channel_keys: Vec<PathBuf>,
    /// Signatures needed from channel keys.
    #[arg(long, value_name = "N")]
    pub channel_threshold: Option<u32>,
    /// Public key file of a license key; repeat for more.
    #[arg(long = "license-key", value_name = "FILE")]
    pub license_keys: Vec<PathBuf>,
    /// Signatures needed from license keys.
    #[arg(long, value_name = "N")]
    pub license_threshold: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum RootCmd {
    /// Write a new trust root, version 1. Every role needs at least one key;
    /// thresholds default to 1.
    Init {
        /// Output file (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        roles: RoleArgs,
        /// Expiry: a duration from now (365d, 12w, 48h) or an RFC 3339 time.
        #[arg(long, default_value = "365d")]
        expires: String,
        /// Private key(s) to sign with right away (root keys); repeat.
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
    },
    /// Add one signature to a root file, in place.
    Sign {
        /// Private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The root file.
        file: PathBuf,
    },
    /// Write root version N+1 from version N: roles given here replace the
    /// old ones, the others are kept. It must then be signed by a threshold
    /// of the old root keys AND of the new ones.
    Rotate {
        /// The current root (version N).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Output file for version N+1 (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        roles: RoleArgs,
        /// Expiry of the new root.
        #[arg(long, default_value = "365d")]
        expires: String,
        /// Private key(s) to sign with right away; repeat.
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
    },
    /// Verify a root: alone (self-signed, not expired), or as the end of a
    /// chain of rotations from a trusted root.
    Verify {
        /// A root you already trust (version N); FILES are then N+1, N+2, ...
        #[arg(long, value_name = "FILE")]
        trusted: Option<PathBuf>,
        /// Root file(s), in version order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ManifestCmd {
    /// Pack a directory into a release artifact and write its unsigned
    /// manifest (OUTDIR/manifest.json).
    Create(Box<CreateArgs>),
    /// Add one signature to a manifest, in place.
    Sign {
        /// Private release key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The manifest.
        file: PathBuf,
    },
    /// Verify a manifest against a trust root, and optionally its artifact.
    Verify {
        /// The trust root.
        #[arg(long, value_name = "FILE")]
        root: PathBuf,
        /// The artifact to check against the manifest's digest and size.
        #[arg(long, value_name = "FILE")]
        artifact: Option<PathBuf>,
        /// The manifest.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Product name (a-z 0-9 . _ -).
    #[arg(long)]
    pub product: String,
    /// Release version (semver).
    #[arg(long)]
    pub version: String,
    /// Directory to pack.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Output directory (created if missing; existing files are not replaced).
    #[arg(long, value_name = "OUTDIR")]
    pub out: PathBuf,
    /// Artifact format: tar.zst or tar.gz.
    #[arg(long, default_value = "tar.zst")]
    pub format: String,
    /// Compression level (zstd 1-19, default 3; gzip 0-9, default 6).
    #[arg(long)]
    pub level: Option<i32>,
    /// Glob of paths the host keeps from the running release; repeat.
    #[arg(long = "preserve", value_name = "GLOB")]
    pub preserve: Vec<String>,
    /// Glob of config paths (operator edits are kept); repeat.
    #[arg(long = "config", value_name = "GLOB")]
    pub config: Vec<String>,
    /// Health check: HTTP URL that must answer --health-status.
    #[arg(long, value_name = "URL", conflicts_with = "health_cmd")]
    pub health_url: Option<String>,
    /// HTTP status that means healthy.
    #[arg(long, default_value_t = 200)]
    pub health_status: u16,
    /// Health check: command that must exit 0 (split on spaces, no shell).
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time one health attempt may take.
    #[arg(long, default_value = "10s")]
    pub health_timeout: String,
    /// Attempts after the first.
    #[arg(long, default_value_t = 3)]
    pub health_retries: u32,
    /// Time between attempts.
    #[arg(long, default_value = "2s")]
    pub health_interval: String,
    /// Manifest expiry: a duration from the release time or an RFC 3339 time.
    #[arg(long, default_value = "365d")]
    pub expires: String,
    /// Release time (RFC 3339); default now. Also every entry's mtime.
    #[arg(long, value_name = "TIME")]
    pub released_at: Option<String>,
    /// Mark the release as a security fix.
    #[arg(long)]
    pub security_fix: bool,
    /// A CycloneDX SBOM (JSON) of the release, shipped beside the artifact
    /// as <product>-<version>.cdx.json with its digest in the manifest.
    #[arg(long, value_name = "FILE.cdx.json")]
    pub sbom: Option<PathBuf>,
    /// Script in the tree to run before the swap (e.g. a migration).
    #[arg(long, value_name = "PATH")]
    pub pre_swap_script: Option<String>,
    /// Script in the tree to run after the swap, before the health check.
    #[arg(long, value_name = "PATH")]
    pub post_swap_script: Option<String>,
    /// Script in the tree to run when rolling back from this release.
    #[arg(long, value_name = "PATH")]
    pub rollback_script: Option<String>,
}

#[derive(Debug, Args)]
pub struct HashTreeArgs {
    /// Directory to hash.
    pub dir: PathBuf,
    /// Glob of config paths (affects `kind` in --json); repeat.
    #[arg(long = "config", value_name = "GLOB")]
    pub config: Vec<String>,
    /// Hashing threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct SignBlobArgs {
    /// Private key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Use Ed25519ph (streams files of any size) instead of pure Ed25519.
    #[arg(long)]
    pub prehash: bool,
    /// Also write the signature to this file.
    #[arg(long, value_name = "FILE")]
    pub output_signature: Option<PathBuf>,
    /// File to sign.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyBlobArgs {
    /// Public key (SPKI PEM): an Ed25519 key for --signature, or the
    /// managed key of a --bundle.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Signature file (base64, as sign-blob prints it, or 64 raw bytes).
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with = "bundle")]
    pub signature: Option<PathBuf>,
    /// The signature is Ed25519ph.
    #[arg(long, requires = "signature")]
    pub prehash: bool,
    /// A Sigstore bundle (.sigstore.json), verified offline.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// The exact certificate identity (email or URI) a keyless bundle must carry.
    #[arg(
        long,
        value_name = "IDENTITY",
        conflicts_with = "certificate_identity_regexp"
    )]
    pub certificate_identity: Option<String>,
    /// A regular expression the whole identity must match (anchored,
    /// unlike cosign's).
    #[arg(long, value_name = "REGEX")]
    pub certificate_identity_regexp: Option<String>,
    /// The exact OIDC issuer of a keyless bundle.
    #[arg(long, value_name = "URL")]
    pub certificate_oidc_issuer: Option<String>,
    /// Sigstore trusted root (default: the public-good root built in).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// A checksum sidecar (`FILE.sha256`, or a `checksums.txt` in
    /// sha256sum format) that the bundle signs instead of FILE: the bundle
    /// is checked over the sidecar, then FILE's SHA-256 against the
    /// sidecar's line for FILE's name (or its only line).
    #[arg(long, value_name = "SIDECAR", requires = "bundle")]
    pub sha256_file: Option<PathBuf>,
    /// The signed file, or `sha256:<hex>` of it (with --bundle).
    pub file: String,
}

#[derive(Debug, Subcommand)]
pub enum ChannelCmd {
    /// Write (and sign) REPO/channels/<product>/<channel>.json pointing at a
    /// release already in the repository.
    Publish {
        /// Repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// Product name.
        #[arg(long)]
        product: String,
        /// Channel name (stable, beta, ...).
        #[arg(long)]
        channel: String,
        /// Version to point at (REPO/releases/<product>/<version>/manifest.json).
        #[arg(long, required_unless_present = "manifest")]
        version: Option<String>,
        /// Or: the manifest file inside REPO to point at.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Channel key(s) to sign with; repeat to reach a threshold.
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
        /// Pointer expiry: a duration from now or an RFC 3339 time.
        #[arg(long, default_value = "7d")]
        expires: String,
        /// Allow hosts to install this version even if they ran a newer one.
        #[arg(long)]
        allow_downgrade: bool,
        /// Phase the rollout: a preset (`default`: 1% at 1h ... 100% at 6d;
        /// `fast`: 5% at 1h, 25% at 2h, 100% at 3h; `all-at-once`) or a
        /// JSON plan file (`[{"after": "1h", "percent": 1}, ...]`).
        /// Re-publishing the same version keeps its rollout's start (and
        /// its rollout, without this option).
        #[arg(long, value_name = "PLAN")]
        rollout: Option<String>,
    },
    /// Halt the channel's rollout: re-sign its pointer so that hosts that
    /// have not installed its version do not (on their next poll).
    Halt {
        #[command(flatten)]
        at: PointerAt,
        /// Why (shown to operators on every host).
        #[arg(long, default_value = "")]
        reason: String,
        /// Also send hosts that installed it back to the previous release
        /// (a signed downgrade).
        #[arg(long)]
        revert: bool,
    },
    /// Resume a halted rollout where it stopped (its waves move forward by
    /// the time it was halted).
    Resume {
        #[command(flatten)]
        at: PointerAt,
    },
    /// Add one signature to a channel pointer, in place.
    Sign {
        /// Private channel key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The pointer file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCmd {
    /// The channel's rollout as its signed pointer says: the plan, each
    /// wave's end, the wave in progress and the share of hosts eligible now
    /// (or at --at), a halt or revert.
    Status {
        #[command(flatten)]
        on: ChannelAt,
        /// Where the rollout stands at this time instead of now: a duration
        /// from now (`1d`) or an RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Also count the hosts' reports per wave (with --secret).
        #[command(flatten)]
        reports: ReportsArgs,
        /// Draw the rollout as an SVG chart: the plan's eligible share over
        /// time, the installed share (with --fleet-size), the failures per
        /// wave and the instant of a halt.
        #[arg(long, value_name = "FILE.svg")]
        chart: Option<PathBuf>,
        /// How many hosts the fleet has, for the installed share.
        #[arg(long, value_name = "N", requires = "chart")]
        fleet_size: Option<u32>,
    },
    /// Count the hosts' reports of the channel's version per wave, and halt
    /// the rollout (re-signing its pointer) when the failure ratio of a
    /// wave passes --max-failure-ratio with at least --min-reports reports.
    Watch {
        #[command(flatten)]
        at: PointerAt,
        #[command(flatten)]
        reports: ReportsArgs,
        /// Halt above this share of failed reports in a wave (0 to 1).
        #[arg(long, value_name = "R")]
        max_failure_ratio: f64,
        /// ... once the wave has at least this many reports.
        #[arg(long, value_name = "N")]
        min_reports: u32,
        /// Run again after this long (`10m`), until interrupted or halted;
        /// without it, one pass (for cron or CI).
        #[arg(long, value_name = "DURATION")]
        every: Option<String>,
    },
    /// Generate the vendor's report secret (32 random bytes, hex, mode
    /// 0600): the key of every license's report key.
    Secret {
        /// Where to write it (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write a license's report key file (for `[rollout] report_key` on the
    /// customer's hosts; mode 0600).
    ReportKey {
        /// The report secret (`charter rollout secret`).
        #[arg(long, value_name = "FILE")]
        secret: PathBuf,
        /// The license the key signs reports for.
        #[arg(long)]
        license_id: String,
        /// Where to write it (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Where hosts' rollout reports are collected, and the secret to check
/// them with.
#[derive(Debug, clap::Args)]
pub struct ReportsArgs {
    /// A directory of JSON-lines files (every regular file in it is read)
    /// or an http(s) URL serving JSON lines.
    #[arg(long, value_name = "DIR|URL", requires = "secret")]
    pub reports: Option<String>,
    /// The report secret (`charter rollout secret`).
    #[arg(long, value_name = "FILE")]
    pub secret: Option<PathBuf>,
    /// Count at most this many hosts of one license (a license's holder
    /// can sign reports for made-up hosts of that license).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_hosts_per_license: u32,
}

/// Which channel of which repository.
#[derive(Debug, clap::Args)]
pub struct ChannelAt {
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Product name.
    #[arg(long)]
    pub product: String,
    /// Channel name.
    #[arg(long)]
    pub channel: String,
}

/// Which channel pointer to re-sign, with what.
#[derive(Debug, clap::Args)]
pub struct PointerAt {
    #[command(flatten)]
    pub on: ChannelAt,
    /// Channel key(s) to sign with; repeat to reach a threshold.
    #[arg(long = "key", value_name = "FILE", required = true)]
    pub keys: Vec<PathBuf>,
    /// The new pointer's expiry: a duration from now or an RFC 3339 time.
    #[arg(long, default_value = "7d")]
    pub expires: String,
}

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Create a repository directory holding the trust root.
    Init {
        /// Repository directory (created).
        dir: PathBuf,
        /// The trust root (signed).
        #[arg(long, value_name = "FILE")]
        root: PathBuf,
    },
    /// Add a release made by `charter manifest create` (and signed) to the
    /// repository, after verifying it against the repository's root.
    Add {
        /// Repository directory.
        dir: PathBuf,
        /// The directory holding manifest.json and the artifact.
        release: PathBuf,
    },
    /// Add a rotated root (N+1.root.json) after checking it follows the
    /// repository's current root.
    AddRoot {
        /// Repository directory.
        dir: PathBuf,
        /// The new root.
        root: PathBuf,
    },
    /// Verify a whole repository as a host would.
    Verify {
        /// Repository directory.
        dir: PathBuf,
        /// The root hosts trust (default: the lowest N.root.json in DIR).
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LicenseCmd {
    /// Write a signed license.
    Issue(Box<IssueArgs>),
    /// Write a signed status document for a license.
    Status {
        /// License key(s) to sign with; repeat to reach a threshold.
        #[arg(long = "key", value_name = "FILE", required = true)]
        keys: Vec<PathBuf>,
        /// The license it speaks of.
        #[arg(long)]
        license_id: String,
        /// active, suspended or revoked.
        #[arg(long)]
        state: String,
        /// Why (shown to the operator).
        #[arg(long)]
        reason: Option<String>,
        /// How long hosts may rely on it (duration or RFC 3339 time).
        #[arg(long, default_value = "7d")]
        valid_for: String,
        /// The license's current serial (hosts holding an older one are
        /// told it was superseded).
        #[arg(long)]
        current_serial: Option<u64>,
        /// Output file (replaced atomically: status documents are reissued).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show a license or status document, verified against a root.
    Inspect {
        /// The trust root.
        #[arg(long, value_name = "FILE")]
        root: PathBuf,
        /// The document.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// License key(s) to sign with; repeat to reach a threshold.
    #[arg(long = "key", value_name = "FILE", required = true)]
    pub keys: Vec<PathBuf>,
    /// License id (stable across reissues).
    #[arg(long)]
    pub license_id: String,
    /// Serial; must rise with every reissue.
    #[arg(long)]
    pub serial: u64,
    /// Customer name.
    #[arg(long)]
    pub customer: String,
    /// Product.
    #[arg(long)]
    pub product: String,
    /// Not valid before (RFC 3339; default now).
    #[arg(long)]
    pub not_before: Option<String>,
    /// Expiry: a duration from now (365d) or an RFC 3339 time.
    #[arg(long)]
    pub expires: String,
    /// Grace period after expiry or going offline.
    #[arg(long, default_value = "14d")]
    pub grace: String,
    /// Releases dated after this are not entitled (default: the expiry).
    #[arg(long)]
    pub updates_until: Option<String>,
    /// Security-fix releases stay entitled after updates-until.
    #[arg(long)]
    pub security_updates_after: bool,
    /// Feature name; repeat.
    #[arg(long = "feature", value_name = "NAME")]
    pub features: Vec<String>,
    /// Limit as NAME=INTEGER; repeat.
    #[arg(long = "limit", value_name = "NAME=N")]
    pub limits: Vec<String>,
    /// Host fingerprint (`charter-agent fingerprint`): `v2:` and 64 hex
    /// digits (machine id and DMI UUID), or 64 hex digits (v1, machine id);
    /// repeat. None: floating.
    #[arg(long = "machine", value_name = "FINGERPRINT")]
    pub machines: Vec<String>,
    /// Longest the host may go without a fresh status (needs --status-url).
    #[arg(long)]
    pub max_offline: Option<String>,
    /// Where the signed status document is served.
    #[arg(long)]
    pub status_url: Option<String>,
    /// Output file (must not exist).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCmd {
    /// Make a new master key: written to a new 0600 file (default
    /// /etc/charter/master.key), or printed with --print only.
    GenerateKey {
        /// Where to write it (must not exist).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the key on stdout instead of writing a file.
        #[arg(long, conflicts_with = "out")]
        print: bool,
    },
    /// Encrypt every secret field of CONFIG that is still plain, with the
    /// current master key ($CHARTER_MASTER_KEY, $CREDENTIALS_DIRECTORY,
    /// $CHARTER_MASTER_KEY_FILE or /etc/charter/master.key).
    Encrypt {
        /// The config (charter.toml or agent.toml).
        config: PathBuf,
        /// Write the result here instead of replacing CONFIG.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Which secret fields are encrypted, which plain, and which do not
    /// decrypt with the current master key.
    Status {
        /// Config files.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
    /// Re-encrypt every encrypted value under NEW_KEY: checks the current
    /// key decrypts each file first, backs each file up
    /// (FILE.bak-<time>), writes each atomically. Files the current key
    /// cannot decrypt are left untouched and named.
    RotateKey {
        /// The new master key file (from `secrets generate-key`).
        #[arg(long, value_name = "FILE")]
        new_key: PathBuf,
        /// Config files, or directories whose *.toml files are rotated.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}
