"""A real OpenLDAP ``slapd`` for the LDAP tests and the benchmark.

``LdapServer`` builds a cn=config tree and a data LDIF in a temporary directory, loads
both with ``slapadd`` (no running server needed, much faster than ``ldapadd``), then
starts ``slapd`` in the foreground on free loopback ports: plain LDAP (with StartTLS)
and LDAPS, with a certificate made here by a throwaway CA. It is stopped by its pid.

The directory behaves like the ones we sync in production where it matters:

- limits like Active Directory's (``olcLimits``: 1,000 entries a search or page, any
  number over a paged search), so an unpaged search over ``ou=people`` stops at 1,000
  with ``sizeLimitExceeded`` and an oversized page returns nothing;
- a bind with a DN and an empty password succeeds ("unauthenticated bind", as Active
  Directory allows by default: ``olcAllows: bind_anon_dn``);
- a service account for the sync (``SYNC_DN``) and a second one whose limits are far
  lower (``LIMITED_DN``: 5 entries in all), to provoke partial results;
- ``ou=people``: thousands of generated users (paging), each with its own historical
  ``modifyTimestamp`` one second apart, as a directory built over time has;
- ``ou=staff``: a small named population: Persian, Russian and Hebrew names, a manager
  chain, a disabled user (``employeeType: disabled``), a user without e-mail, one in a
  sub-OU, and ``root`` (a username a local admin has);
- ``ou=groups``: nested groups, with a cycle through two mapped groups and a pure cycle;
- ``ou=ad``: Active-Directory-shaped users (``objectGUID``, ``sAMAccountName``,
  ``userAccountControl``, ``uSNChanged``, ``whenChanged``, ``department`` from a small
  schema with Microsoft's own OIDs) and groups, for the AD flavour.

Nothing here is a mock: the tests talk LDAP to this slapd over TCP.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

SUFFIX = "dc=example,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root secret"
SYNC_DN = f"cn=sync,ou=service,{SUFFIX}"
SYNC_PASSWORD = "sync secret"
LIMITED_DN = f"cn=limited,ou=service,{SUFFIX}"
LIMITED_PASSWORD = "limited secret"
PEOPLE = f"ou=people,{SUFFIX}"
STAFF = f"ou=staff,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
AD_USERS = f"ou=users,ou=ad,{SUFFIX}"
AD_GROUPS = f"ou=groups,ou=ad,{SUFFIX}"
# Outside every base DN the tests configure: moving a user here makes them "missing"
# while keeping their entryUUID, so moving them back makes them reappear.
ATTIC = f"ou=attic,{SUFFIX}"
# Every named user's directory password.
PASSWORD = "Directory pass 1"
# Historical modification times of the generated data: one second apart from here.
EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
SERVER_SIZE_LIMIT = 1000

SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

# Active Directory's own attribute OIDs (from Microsoft's schema), as a small schema.
AD_SCHEMA_TYPES = [
    "( 1.2.840.113556.1.4.2 NAME 'objectGUID' EQUALITY octetStringMatch"
    " SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )",
    "( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' EQUALITY caseIgnoreMatch"
    " SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )",
    "( 1.2.840.113556.1.4.8 NAME 'userAccountControl' EQUALITY integerMatch"
    " SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )",
    "( 1.2.840.113556.1.2.120 NAME 'uSNChanged' EQUALITY integerMatch"
    " ORDERING integerOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )",
    "( 1.2.840.113556.1.2.3 NAME 'whenChanged' EQUALITY generalizedTimeMatch"
    " ORDERING generalizedTimeOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.24"
    " SINGLE-VALUE )",
    "( 1.2.840.113556.1.2.141 NAME 'department' EQUALITY caseIgnoreMatch"
    " SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )",
]
AD_SCHEMA_CLASS = ("( 1.3.6.1.4.1.99999.2.1 NAME 'sdTestAdUser' SUP top AUXILIARY MAY"
                   " ( objectGUID $ sAMAccountName $ userAccountControl $ uSNChanged $"
                   " whenChanged $ department ) )")
AD_SCHEMA = "\n".join([
    "dn: cn=adlike,cn=schema,cn=config", "objectClass: olcSchemaConfig", "cn: adlike",
    *(f"olcAttributeTypes: {t}" for t in AD_SCHEMA_TYPES),
    f"olcObjectClasses: {AD_SCHEMA_CLASS}",
]) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ssha(password: str, salt: bytes = b"sdtest42") -> str:
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def gtime(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")


def _value(name: str, value) -> str:
    """One LDIF line; base64 for anything that is not plain safe ASCII."""
    if isinstance(value, bytes):
        return f"{name}:: {base64.b64encode(value).decode()}"
    text = str(value)
    safe = text.isascii() and text == text.strip() and not text.startswith((":", "<")) \
        and all(32 <= ord(c) < 127 for c in text)
    if safe:
        return f"{name}: {text}"
    return f"{name}:: {base64.b64encode(text.encode()).decode()}"


def entry(dn: str, attrs: dict) -> str:
    lines = [_value("dn", dn)]
    for name, values in attrs.items():
        for value in values if isinstance(values, list) else [values]:
            lines.append(_value(name, value))
    return "\n".join(lines) + "\n"


def bulk_uid(i: int) -> str:
    return f"user{i:05d}"


def bulk_dn(i: int) -> str:
    return f"uid={bulk_uid(i)},{PEOPLE}"


# --- the data ----------------------------------------------------------------------------

# uid, cn, displayName, extra attributes. "manager" is a uid in ou=staff.
STAFF_USERS = [
    ("shirin", "Shirin Ahmadi", "شیرین احمدی", {"title": "Chief Executive",
                                                 "departmentNumber": "مدیریت"}),
    ("boris", "Boris Petrov", "Борис Петров", {"title": "CTO", "manager": "shirin",
                                               "departmentNumber": "ИТ"}),
    ("david", "David Cohen", "דוד כהן", {"title": "Team lead", "manager": "boris",
                                         "departmentNumber": "IT"}),
    ("alice", "Alice Adams", "Alice Adams", {"manager": "david", "telephoneNumber": "+49 30 1234",
                                             "departmentNumber": "IT", "title": "Engineer"}),
    ("bob", "Bob Brown", "Bob Brown", {"manager": "david"}),
    ("carol", "Carol Clark", "Carol Clark", {}),
    ("dave", "Dave Disabled", "Dave Disabled", {"employeeType": "disabled"}),
    ("erin", "Erin Nomail", "Erin Nomail", {"mail": None}),
    ("root", "Root Clash", "Root Clash", {}),
]
SUB_OU_USER = ("frank", "Frank Berlin", "Frank Berlin")

# AD-shaped users: sAMAccountName, cn, displayName, userAccountControl, extra.
AD_USERS_DATA = [
    ("ivan", "Ivan Ivanov", "Иван Иванов", 512, {"department": "Бухгалтерия"}),
    ("noa", "Noa Levi", "נועה לוי", 512, {"manager": "ivan"}),
    ("reza", "Reza Karimi", "رضا کریمی", 512, {"manager": "noa"}),
    ("olga", "Olga Locked", "Olga Locked", 514, {}),             # ACCOUNTDISABLE
    ("pavel", "Pavel Expired", "Pavel Expired", 66050, {}),      # disabled, no expiry
]


def staff_dn(uid: str) -> str:
    if uid == SUB_OU_USER[0]:
        return f"uid={uid},ou=berlin,{STAFF}"
    return f"uid={uid},{STAFF}"


def group_dn(cn: str, base: str = GROUPS) -> str:
    return f"cn={cn},{base}"


def ad_dn(sam: str) -> str:
    return f"cn={sam},{AD_USERS}"


def ad_guid(i: int) -> uuid.UUID:
    return uuid.UUID(int=0x5D000000_0000_4000_8000_000000000000 + i)


GROUP_DATA = {
    # cycle through two mapped groups: l1-team <-> l2-team
    "servicedesk-agents": [group_dn("l1-team"), staff_dn("carol")],
    "l1-team": [staff_dn("alice"), group_dn("l2-team")],
    "l2-team": [staff_dn("bob"), group_dn("l1-team")],
    "managers": [staff_dn("david")],
    "admins": [staff_dn("boris")],
    "cycle-a": [group_dn("cycle-b")],
    "cycle-b": [group_dn("cycle-a"), staff_dn("erin")],
    "bulk-agents": [bulk_dn(i) for i in range(1, 101)],
}
AD_GROUP_DATA = {
    "it-staff": [group_dn("it-nested", AD_GROUPS), ad_dn("ivan")],
    "it-nested": [ad_dn("noa"), group_dn("it-staff", AD_GROUPS)],
}


def data_ldif(bulk_users: int) -> str:
    moment = iter(EPOCH + timedelta(seconds=i) for i in range(10_000_000))

    def stamped(attrs: dict) -> dict:
        when = next(moment)
        return {**attrs, "createTimestamp": gtime(when), "modifyTimestamp": gtime(when)}

    parts = [
        entry(SUFFIX, stamped({"objectClass": ["top", "dcObject", "organization"],
                               "dc": "example", "o": "Example"})),
    ]
    for ou in ("service", "people", "staff", "groups", "ad", "attic"):
        parts.append(entry(f"ou={ou},{SUFFIX}",
                           stamped({"objectClass": "organizationalUnit", "ou": ou})))
    parts.append(entry(f"ou=berlin,{STAFF}",
                       stamped({"objectClass": "organizationalUnit", "ou": "berlin"})))
    for ou in ("users", "groups"):
        parts.append(entry(f"ou={ou},ou=ad,{SUFFIX}",
                           stamped({"objectClass": "organizationalUnit", "ou": ou})))
    for dn, password in ((SYNC_DN, SYNC_PASSWORD), (LIMITED_DN, LIMITED_PASSWORD)):
        parts.append(entry(dn, stamped({
            "objectClass": ["applicationProcess", "simpleSecurityObject"],
            "cn": dn.split(",")[0][3:], "userPassword": ssha(password)})))
    for uid, cn, display, extra in STAFF_USERS + [(*SUB_OU_USER, {})]:
        attrs = {"objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],
                 "uid": uid, "cn": cn, "sn": cn.split()[-1], "displayName": display,
                 "mail": f"{uid}@example.test", "userPassword": ssha(PASSWORD)}
        for key, value in extra.items():
            if key == "manager":
                value = staff_dn(value)
            attrs[key] = value
        attrs = {k: v for k, v in attrs.items() if v is not None}
        parts.append(entry(staff_dn(uid), stamped(attrs)))
    for i in range(1, bulk_users + 1):
        uid = bulk_uid(i)
        parts.append(entry(bulk_dn(i), stamped({
            "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],
            "uid": uid, "cn": f"User {i:05d}", "sn": f"{i:05d}", "displayName": f"User {i:05d}",
            "mail": f"{uid}@example.test", "title": "Employee",
            "departmentNumber": f"Dept {i % 40}"})))
    for cn, members in GROUP_DATA.items():
        if cn == "bulk-agents" and bulk_users < 100:
            members = [bulk_dn(i) for i in range(1, bulk_users + 1)] or [staff_dn("carol")]
        parts.append(entry(group_dn(cn), stamped({"objectClass": "groupOfNames", "cn": cn,
                                                  "member": members})))
    for n, (sam, cn, display, uac, extra) in enumerate(AD_USERS_DATA, start=1):
        when = next(moment)
        attrs = {"objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson",
                                 "sdTestAdUser"],
                 "cn": sam, "sn": cn.split()[-1], "displayName": display,
                 "sAMAccountName": sam, "mail": f"{sam}@ad.example.test",
                 "objectGUID": ad_guid(n).bytes_le, "userAccountControl": str(uac),
                 "uSNChanged": str(1000 + n), "whenChanged": gtime(when),
                 "userPassword": ssha(PASSWORD),
                 "createTimestamp": gtime(when), "modifyTimestamp": gtime(when)}
        for key, value in extra.items():
            attrs[key] = ad_dn(value) if key == "manager" else value
        parts.append(entry(ad_dn(sam), attrs))
    for cn, members in AD_GROUP_DATA.items():
        parts.append(entry(group_dn(cn, AD_GROUPS),
                           stamped({"objectClass": "groupOfNames", "cn": cn, "member": members})))
    return "\n".join(parts)


# --- the server ---------------------------------------------------------------------------


def _config_ldif(workdir: Path, tls: dict) -> str:
    schemas = "\n".join(
        (SCHEMA_DIR / f"{name}.ldif").read_text() for name in ("core", "cosine", "inetorgperson")
    )
    limits = (
        f'{{0}}dn.exact="{LIMITED_DN}" size.soft=5 size.hard=5 size.pr=5 size.prtotal=5',
        f"{{1}}* size.soft={SERVER_SIZE_LIMIT} size.hard={SERVER_SIZE_LIMIT} "
        f"size.pr={SERVER_SIZE_LIMIT} size.prtotal=unlimited",
    )
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {workdir}/slapd.pid
olcArgsFile: {workdir}/slapd.args
olcLogLevel: none
olcAllows: bind_anon_dn
olcSizeLimit: {SERVER_SIZE_LIMIT}
olcToolThreads: 2
olcTLSCACertificateFile: {tls['ca']}
olcTLSCertificateFile: {tls['cert']}
olcTLSCertificateKeyFile: {tls['key']}

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}

{AD_SCHEMA}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: {SERVER_SIZE_LIMIT}
olcAccess: {{0}}to dn.exact="" by * read
olcAccess: {{1}}to dn.base="cn=Subschema" by * read

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbMaxSize: 2147483648
olcSuffix: {SUFFIX}
olcDbDirectory: {workdir}/data
olcRootDN: {ROOT_DN}
olcRootPW: {ROOT_PASSWORD}
olcLastMod: TRUE
olcDbIndex: objectClass eq
olcDbIndex: uid,cn,sAMAccountName eq
olcDbIndex: entryUUID eq
olcDbIndex: member eq
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none
olcLimits: {limits[0]}
olcLimits: {limits[1]}
"""


def _make_certificates(workdir: Path) -> dict:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (EC: fast)."""
    tls = {name: str(workdir / f"{name}.pem") for name in ("ca", "ca-key", "cert", "key")}
    ext = workdir / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", *ec, "-keyout", tls["ca-key"], "-out", tls["ca"], "-days", "30",
            "-subj", "/CN=servicedesk test CA")
    openssl("req", *ec, "-keyout", tls["key"], "-out", str(workdir / "server.csr"),
            "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", str(workdir / "server.csr"), "-CA", tls["ca"],
            "-CAkey", tls["ca-key"], "-CAcreateserial", "-out", tls["cert"], "-days", "30",
            "-extfile", str(ext))
    return tls


class LdapServer:
    """One slapd with generated configuration and data; ``start()`` / ``stop()``."""

    def __init__(self, bulk_users: int = 2600, workdir: str | os.PathLike | None = None):
        for tool in ("slapd", "slapadd", "openssl"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                raise RuntimeError(f"{tool} is missing: run .ci/ensure-system-packages "
                                   "(Debian packages slapd, ldap-utils, openssl)")
        self.bulk_users = bulk_users
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sd-slapd-"))
        self.process: subprocess.Popen | None = None
        self.port = self.tls_port = 0
        self.tls: dict = {}

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> str:
        return self.tls["ca"]

    def _slap(self, *args) -> None:
        result = subprocess.run(["/usr/sbin/slapadd", *args], capture_output=True, text=True,
                                timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"slapadd {' '.join(args)} failed: {result.stderr[-2000:]}")

    def build(self) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        config_dir = self.workdir / "slapd.d"
        config_dir.mkdir(exist_ok=True)
        self.tls = _make_certificates(self.workdir)
        (self.workdir / "config.ldif").write_text(_config_ldif(self.workdir, self.tls))
        (self.workdir / "data.ldif").write_text(data_ldif(self.bulk_users), encoding="utf-8")
        self._slap("-n0", "-F", str(config_dir), "-l", str(self.workdir / "config.ldif"))
        self._slap("-q", "-n1", "-F", str(config_dir), "-l", str(self.workdir / "data.ldif"))

    def start(self, timeout: float = 30.0) -> LdapServer:
        self.build()
        self.port, self.tls_port = free_port(), free_port()
        log = open(self.workdir / "slapd.log", "wb")
        self.process = subprocess.Popen(
            ["/usr/sbin/slapd", "-d", "0", "-F", str(self.workdir / "slapd.d"),
             "-h", f"{self.uri}/ {self.ldaps_uri}/"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("slapd exited: "
                                   + (self.workdir / "slapd.log").read_text(errors="replace"))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5), \
                        socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"slapd did not listen within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- changing the directory, as its administrators would ---------------------------

    def admin(self):
        """An ldap3 connection bound as the root DN (for tests that change the directory)."""
        import ldap3

        conn = ldap3.Connection(ldap3.Server(self.uri, get_info=ldap3.NONE), ROOT_DN,
                                ROOT_PASSWORD, auto_bind=True, raise_exceptions=True,
                                receive_timeout=30)
        return conn


_shared: LdapServer | None = None


def shared_server() -> LdapServer:
    """The test session's one slapd, started on first use (see ``slapd`` fixtures)."""
    global _shared
    if _shared is None:
        _shared = LdapServer().start()
    return _shared


def stop_shared_server() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


# --- servicedesk settings for this directory (the API's PUT body) -------------------------


def settings(server: LdapServer, base: str = STAFF, **overrides) -> dict:
    """OpenLDAP-flavoured settings for ``base``: StartTLS validated with the test CA, the
    sync service account, the disabled filter, no group mappings."""
    values = {
        "enabled": True, "flavour": "openldap", "server_uris": [server.uri],
        "security": "starttls", "ca_file": server.ca_file, "tls_verify": True,
        "bind_dn": SYNC_DN, "bind_password": SYNC_PASSWORD, "user_base_dn": base,
        "user_filter": "(objectClass=inetOrgPerson)",
        "disabled_filter": "(employeeType=disabled)", "group_base_dn": GROUPS,
        "group_filter": "(objectClass=groupOfNames)", "group_member_attribute": "member",
        "id_attribute": "entryUUID", "change_attribute": "modifyTimestamp",
        "attributes": {"username": "uid", "email": "mail", "display_name": "displayName",
                       "phone": "telephoneNumber", "department": "departmentNumber",
                       "title": "title", "manager": "manager"},
        "group_mappings": [], "default_role": "requester", "page_size": 500,
        "sync_interval_minutes": 0, "max_deactivate_percent": 10,
    }
    values.update(overrides)
    return values


def ad_settings(server: LdapServer, **overrides) -> dict:
    """Active-Directory-flavoured settings for ``ou=ad`` (objectGUID, sAMAccountName,
    userAccountControl, uSNChanged)."""
    return settings(server, base=AD_USERS, **{
        "flavour": "ad", "user_filter": "(objectClass=sdTestAdUser)", "disabled_filter": "",
        "group_base_dn": AD_GROUPS, "id_attribute": "objectGUID",
        "change_attribute": "uSNChanged",
        "attributes": {"username": "sAMAccountName", "email": "mail",
                       "display_name": "displayName", "department": "department",
                       "manager": "manager"},
        **overrides})
