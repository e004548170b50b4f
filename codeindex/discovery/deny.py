"""What discovery never indexes, whatever the ignore files say.

The security deny list ``DENY_PATTERNS`` (applied at any depth, whatever the case of the
name; no ``!negation`` in an ignore file re-includes it), any ``.git`` entry, and
``settings.index_dir`` when it lies inside the root. Pure path logic: no I/O.

A hard link is one file under two names, so ``notes.txt`` linked to ``.env`` holds the
secret under an innocent name. ``walk()`` remembers the inode of every deny-listed
regular file with more than one link that it lists and leaves out any later file with
the same ``(st_dev, st_ino)``. The limit: a twin listed *before* its deny-listed name
(an earlier directory, or a name sorting before it), a twin of a file inside a denied
directory (never listed), and single paths judged by ``check_path`` (the watcher) are
not recognised; only the walk sees more than one name.
"""

from __future__ import annotations

import os

from pathspec import GitIgnoreSpec

from codeindex.config import Settings

# Gitignore syntax, written in lower case and matched case-folded, so ``SERVER.PEM``,
# ``.ENV`` and ``Private.Key`` are denied like their lower-case names (a case-insensitive
# file system serves either spelling). Two kinds of entry:
# * ``name/`` denies a directory and everything beneath it, at any depth; it is matched
#   against the whole relative path, so ``**/a/b/`` names a nested directory;
# * any other entry is a file *name* pattern (no ``/``), matched against the last
#   component of a file's path at any depth. It never denies a directory: a directory
#   named ``credentials/`` or ``kubeconfig/`` is usually a code package (grpc-go,
#   kubeadm), and is walked.
# ``!name`` lines are exceptions within this list only (the last matching entry wins).
# The list is checked apart from the ignore files, so that no ``!negation`` in them
# re-includes a denied path.
DENY_PATTERNS: tuple[str, ...] = (
    # Environment files: dotenv and direnv files hold API keys and passwords by
    # convention. The rule: ``.env``, ``.env.<anything>`` and ``<anything>.env`` are
    # denied, except the templates meant to be committed, whose other part is exactly
    # ``example``, ``sample`` or ``template`` (placeholders that document the settings).
    # A directory named ``.env`` is a virtualenv or a folder of env files.
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "!.env.example",
    "!.env.sample",
    "!.env.template",
    "!example.env",
    "!sample.env",
    "!template.env",
    ".env/",
    # Private keys, certificates and key stores: one leaked private key is a full
    # compromise (*.pem and *.key also hold PEM private keys; *.p8 is Apple's
    # AuthKey_*.p8; *.keytab is Kerberos; *.ovpn profiles embed the client key).
    "*.pem",
    "*.key",
    "*.ppk",
    "*.p8",
    "*.p12",
    "*.pfx",
    "*.pkcs12",
    "*.jks",
    "*.keystore",
    "*.bks",
    "*.kdbx",
    "*.keytab",
    "*.ovpn",
    # SSH: user keys (any suffix: .pub, -cert.pub, _sk) and host keys.
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "ssh_host_*key*",
    # OpenPGP secret keys exported as text, and GnuPG's secret keyring.
    "*private*.asc",
    "*secret*.asc",
    "secring.*",
    # Cloud credentials: AWS (credentials), Google Cloud (service-account and OAuth
    # client keys, application default credentials, gcloud's token stores), Kubernetes
    # kubeconfig files (cluster certificates and tokens).
    "credentials",
    "credentials.json",
    "credentials.toml",
    "credentials.db",
    "access_tokens.db",
    "application_default_credentials.json",
    "*service[-_]account*.json",
    "client_secret*.json",
    "kubeconfig",
    "*.kubeconfig",
    "*kubeconfig*.yaml",
    "*kubeconfig*.yml",
    # Infrastructure state and inputs: Terraform state stores every resource's
    # attributes in clear (passwords included); *.tfvars carry the inputs; the CLI
    # config and credentials.tfrc.json carry API tokens; Vault's token file.
    "*.tfvars",
    "*.tfvars.json",
    "*.tfstate",
    "*.tfstate.*",
    ".terraformrc",
    "terraform.rc",
    "credentials.tfrc.json",
    ".vault-token",
    # Tool credentials: package registries (.npmrc and .pypirc usually hold publish
    # tokens; deny rather than guess), database clients, S3/boto, HTTP basic auth,
    # git's credential store, docker's legacy config.
    ".npmrc",
    ".pypirc",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".my.cnf",
    ".mylogin.cnf",
    ".s3cfg",
    ".boto",
    ".htpasswd",
    "htpasswd",
    ".git-credentials",
    ".dockercfg",
    # Application configs that hold passwords by convention: Rails' database.yml,
    # WordPress' wp-config.php, secrets.yaml/secrets.json/...
    "database.yml",
    "wp-config.php",
    "secrets.*",
    # System password files, and shell/REPL histories (pasted tokens and passwords).
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    ".*_history",
    # Credential directories: everything beneath them is keys, tokens or config that
    # points at them (.docker/config.json, .kube/config, composer's auth.json included).
    # .cargo/credentials(.toml) is caught by name above.
    ".aws/",
    ".azure/",
    ".ssh/",
    ".gnupg/",
    ".docker/",
    ".kube/",
    ".gcloud/",
    "**/.config/gcloud/",
    ".password-store/",
    ".terraform.d/",
    ".composer/",
)
_DENY_DIRS = GitIgnoreSpec.from_lines(p for p in DENY_PATTERNS if p.endswith("/"))
# Matched against one component only: a gitignore pattern matched against a whole path
# would also match every path beneath a directory of that name.
_DENY_NAMES = GitIgnoreSpec.from_lines(p for p in DENY_PATTERNS if not p.endswith("/"))


def denied(rel: str, is_dir: bool) -> bool:
    """True if the deny list covers ``rel`` (POSIX, relative to the root), in any case.

    A directory is denied by a ``/`` entry (or by lying under one); a file by a name
    entry matching its last component, or by lying under a denied directory. Only the
    deny list: ``.git`` and the index directory are ``always_excluded``'s.
    """
    path = rel.casefold()
    if is_dir:
        return bool(_DENY_DIRS.match_file(path + "/"))
    name = path.rpartition("/")[2]
    return bool(_DENY_DIRS.match_file(path)) or bool(_DENY_NAMES.match_file(name))


def within(path: str, root: str) -> bool:
    """True if absolute ``path`` is ``root`` or lies beneath it (both already resolved)."""
    if path == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path.startswith(prefix)


def index_dir_rels(settings: Settings) -> tuple[str, ...]:
    """Relative POSIX paths of the index directory, if it lies inside the root."""
    out: list[str] = []
    pairs = (
        (str(settings.index_dir), str(settings.root)),
        (os.path.realpath(settings.index_dir), os.path.realpath(settings.root)),
    )
    for idx, root in pairs:
        if idx != root and within(idx, root):
            rel = os.path.relpath(idx, root).replace(os.sep, "/")
            if rel not in out:
                out.append(rel)
    return tuple(out)


def always_excluded(rel: str, is_dir: bool, index_rels: tuple[str, ...] = ()) -> bool:
    """True for deny-listed paths (``denied``), anything in a ``.git`` entry (any
    case), and the index directory.

    Checks every component of ``rel`` (no ignore files involved, no I/O).
    """
    if not rel:
        return False
    # Any case: on a case-insensitive file system ``.GIT/config`` is the git config.
    if ".git" in rel.casefold().split("/"):
        return True
    for idx in index_rels:
        if rel == idx or rel.startswith(idx + "/"):
            return True
    return denied(rel, is_dir)
