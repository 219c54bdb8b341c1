"""iControl SOAP (minimal): the portal, its WSDLs, and LocalLB.Pool calls.

Served at ``/iControl/iControlPortal.cgi``. Like a device, every request
without valid credentials gets ``401`` and ``WWW-Authenticate: Basic
realm="BIG-IP"`` -- bigsuds (through urllib) sends credentials only after
that challenge (reference §9). Errors are SOAP faults with HTTP 500, which
suds raises as ``WebFault`` and bigsuds as ``bigsuds.ServerError``. SOAP and
REST act on the same ``State``.
"""
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from . import ha, wsdl
from .auth import basic_credentials
from .errors import F5Error
from .model import member_status, read_state
from .names import join_fullpath, join_member_name
from .rest import Response

PORTAL = "/iControl/iControlPortal.cgi"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="BIG-IP"'}
XML = "text/xml; charset=utf-8"


class Fault(Exception):
    """A SOAP fault in the text layout iControl uses."""

    def __init__(self, message, exception="Common::OperationFailed"):
        super().__init__(message)
        self.message = message
        self.exception = exception


def handle(state, method, query, headers, raw_body, host):
    creds = basic_credentials(headers.get("Authorization"))
    if not creds or state.users.get(creds[0]) != creds[1]:
        return Response(401, "<html><body><h1>401 Unauthorized</h1></body></html>\n", dict(CHALLENGE))
    if method == "GET":
        name = (query.get("WSDL") or [None])[0]
        if name is None:
            return Response(200, wsdl.portal_index())
        if name not in wsdl.INTERFACES:
            return Response(404, "<html><body><h1>404 Not Found</h1><p>No WSDL %s.</p></body></html>\n"
                            % escape(name))
        return Response(200, wsdl.render(name, "https://%s%s" % (host, PORTAL)), {"Content-Type": XML})
    if method != "POST":
        return Response(405, "<html><body><h1>405 Method Not Allowed</h1></body></html>\n")
    return call(state, raw_body, creds[0])


# What each role may call (see rest.authorize): an operator toggles members only.
SOAP_WRITES = {"add_member_v2": "create", "remove_member_v2": "delete",
               "set_member_session_enabled_state": "toggle", "set_member_monitor_state": "toggle"}


def _authorize(state, user, name):
    verb = SOAP_WRITES.get(name)
    role = state.role_of(user)
    if verb is None or role == "admin" or (role == "operator" and verb == "toggle"):
        return
    raise Fault("01070822:3: Access Denied: user (%s) does not have %s access to object (pool_member)"
                % (user, "modify" if verb == "toggle" else verb))


# --- envelope in ---------------------------------------------------------------------

def _local(tag):
    return tag.rsplit("}", 1)[-1]


def call(state, raw_body, user="admin"):
    try:
        root = ET.fromstring(raw_body)
    except ET.ParseError as exc:
        return _fault_response("Unknown", "unknown", Fault("Malformed SOAP request: %s" % exc))
    body = next((e for e in root if _local(e.tag) == "Body"), None)
    op = body[0] if body is not None and len(body) else None
    if op is None:
        return _fault_response("Unknown", "unknown", Fault("No SOAP operation in the request."))
    ns = op.tag[1:].split("}")[0] if op.tag.startswith("{") else ""
    interface = ns.replace("urn:iControl:", "").replace("/", ".")
    name = _local(op.tag)
    methods = wsdl.INTERFACES.get(interface, {})
    if name not in methods:
        return _fault_response(interface, name, Fault("Method %s::%s is not emulated." % (interface, name),
                                                      "Common::NotImplemented"))
    params, ret = methods[name]
    ids = {e.get("id"): e for e in root.iter() if e.get("id")}
    children = {_local(c.tag): c for c in op}
    args = {p: _decode(children.get(p), t, ids) for p, t in params}
    impl = IMPLEMENTATIONS[(interface, name)]
    try:
        with state.lock:
            _authorize(state, user, name)
            result = impl(state, **args)
            if name in SOAP_WRITES:
                ha.after_change(state)
    except Fault as fault:
        return _fault_response(interface, name, fault)
    except F5Error as exc:
        return _fault_response(interface, name, Fault(exc.message))
    return Response(200, _envelope('<m:%sResponse xmlns:m="%s">%s</m:%sResponse>' % (
        name, wsdl.service_namespace(interface), _encode(result, ret, "return") if ret else "", name)),
        {"Content-Type": XML})


def _decode(elem, type_name, ids):
    if elem is None or elem.get("{%s}nil" % XSI) == "true":
        return None
    href = elem.get("href")
    if href and href.startswith("#"):
        elem = ids.get(href[1:], elem)
    if type_name in wsdl.ARRAYS:
        return [_decode(child, wsdl.ARRAYS[type_name], ids) for child in elem]
    if type_name in wsdl.STRUCTS:
        fields = {_local(c.tag): c for c in elem}
        return {f: _decode(fields.get(f), t, ids) for f, t in wsdl.STRUCTS[type_name]}
    text = (elem.text or "").strip()
    if type_name in ("xsd:long", "xsd:unsignedInt", "xsd:int"):
        return int(text)
    return text


# --- envelope out --------------------------------------------------------------------

def _xsi(type_name):
    return type_name if type_name.startswith("xsd:") else "iControl:" + type_name


def _encode(value, type_name, tag):
    if type_name in wsdl.ARRAYS:
        item = wsdl.ARRAYS[type_name]
        inner = "".join(_encode(v, item, "item") for v in value)
        return '<%s xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="%s[%d]">%s</%s>' % (
            tag, _xsi(item), len(value), inner, tag)
    if type_name in wsdl.STRUCTS:
        inner = "".join(_encode(value[f], t, f) for f, t in wsdl.STRUCTS[type_name])
        return '<%s xsi:type="%s">%s</%s>' % (tag, _xsi(type_name), inner, tag)
    return '<%s xsi:type="%s">%s</%s>' % (tag, _xsi(type_name), escape(str(value)), tag)


def _envelope(inner):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<SOAP-ENV:Envelope xmlns:SOAP-ENV="%s" xmlns:SOAP-ENC="%s" xmlns:xsd="%s" xmlns:xsi="%s" '
            'xmlns:iControl="urn:iControl" SOAP-ENV:encodingStyle="%s"><SOAP-ENV:Body>%s</SOAP-ENV:Body>'
            '</SOAP-ENV:Envelope>\n' % (SOAP_ENV, wsdl.SOAP_ENC, wsdl.XSD, XSI, wsdl.SOAP_ENC, inner))


def _fault_response(interface, method, fault):
    code = fault.message.split(":", 1)[0]
    primary = int(code, 16) if len(code) == 8 and all(c in "0123456789abcdefABCDEF" for c in code) else 0
    text = ("Exception caught in %s::%s::%s()\nException: %s\n"
            "\tprimary_error_code   : %d (0x%08X)\n\tsecondary_error_code : 0\n"
            "\terror_string         : %s" % (interface.split(".")[0], wsdl.service_namespace(interface), method,
                                            fault.exception, primary, primary, fault.message))
    return Response(500, _envelope(
        '<SOAP-ENV:Fault><faultcode xsi:type="xsd:string">SOAP-ENV:Server</faultcode>'
        '<faultstring xsi:type="xsd:string">%s</faultstring></SOAP-ENV:Fault>' % escape(text)),
        {"Content-Type": XML})


# --- LocalLB.Pool ---------------------------------------------------------------------

def _pool(state, name):
    return state.pool(join_fullpath("Common", name))


def _member_fp(address_port):
    # In v11+ calls, "address" is the node *name*, e.g. "/Common/10.0.0.1".
    node_fp = join_fullpath("Common", address_port["address"])
    return join_member_name(node_fp, int(address_port["port"]))


def _pairs(pool_names, *lists):
    for other in lists:
        if other is None or len(other) != len(pool_names):
            raise Fault("The parallel arrays of this call have different lengths.", "Common::InvalidArgument")
    return zip(pool_names, *lists)


def _each_member(state, pool_names, members):
    """[(pool, [member, ...]), ...] for parallel pool_names/members arrays."""
    out = []
    for pool_name, addrs in _pairs(pool_names, members):
        pool = _pool(state, pool_name)
        out.append((pool, [state.member(pool, _member_fp(a)) for a in addrs or []]))
    return out


def get_list(state):
    return sorted(state.pools)


def get_member_v2(state, pool_names):
    return [[{"address": m.node.fullpath, "port": m.port} for m in _pool(state, n).members.values()]
            for n in pool_names or []]


def add_member_v2(state, pool_names, members):
    for pool_name, addrs in _pairs(pool_names, members):
        pool = _pool(state, pool_name)
        for a in addrs or []:
            state.create_member(pool, _member_fp(a))


def remove_member_v2(state, pool_names, members):
    for pool, found in _each_member(state, pool_names, members):
        for m in found:
            state.delete_member(pool, m)


def _set_each(state, pool_names, members, values, attr, mapping):
    for (pool, found), row in zip(_each_member(state, pool_names, members), _rows(pool_names, members, values)):
        for m, value in zip(found, row):
            state.update_member(pool, m, {attr: mapping[value]})


def _rows(pool_names, members, values):
    rows = list(values or [])
    if len(rows) != len(pool_names) or any(len(r or []) != len(m or []) for r, m in zip(rows, members)):
        raise Fault("The parallel arrays of this call have different lengths.", "Common::InvalidArgument")
    return rows


def set_member_session_enabled_state(state, pool_names, members, session_states):
    _set_each(state, pool_names, members, session_states, "session",
              {"STATE_ENABLED": "user-enabled", "STATE_DISABLED": "user-disabled"})


def set_member_monitor_state(state, pool_names, members, monitor_states):
    _set_each(state, pool_names, members, monitor_states, "state",
              {"STATE_ENABLED": "user-up", "STATE_DISABLED": "user-down"})


def get_member_session_status(state, pool_names, members):
    def status(pool, m):
        if m.session == "user-disabled":
            return "SESSION_STATUS_FORCED_DISABLED"
        if m.node.disabled:
            return "SESSION_STATUS_ADDRESS_DISABLED"
        return "SESSION_STATUS_ENABLED"
    return [[status(p, m) for m in found] for p, found in _each_member(state, pool_names, members)]


MONITOR_STATUS = {"user-down": "MONITOR_STATUS_FORCED_DOWN", "up": "MONITOR_STATUS_UP",
                  "down": "MONITOR_STATUS_DOWN", "checking": "MONITOR_STATUS_CHECKING",
                  "unchecked": "MONITOR_STATUS_UNCHECKED"}


def get_member_monitor_status(state, pool_names, members):
    return [[MONITOR_STATUS[read_state(p, m)] for m in found]
            for p, found in _each_member(state, pool_names, members)]


AVAILABILITY = {"available": "AVAILABILITY_STATUS_GREEN", "offline": "AVAILABILITY_STATUS_RED",
                "unknown": "AVAILABILITY_STATUS_BLUE"}
ENABLED = {"enabled": "ENABLED_STATUS_ENABLED", "disabled": "ENABLED_STATUS_DISABLED",
           "disabled-by-parent": "ENABLED_STATUS_DISABLED_BY_PARENT"}


def get_member_object_status(state, pool_names, members):
    def status(pool, m):
        s = member_status(pool, m)
        return {"availability_status": AVAILABILITY[s.availability], "enabled_status": ENABLED[s.enabled],
                "status_description": s.reason}
    return [[status(p, m) for m in found] for p, found in _each_member(state, pool_names, members)]


def _u64(n):
    return {"high": (n >> 32) & 0xFFFFFFFF, "low": n & 0xFFFFFFFF}


def _member_statistics(state, pool, found):
    entries = []
    for m in found:
        conns, sessions = state.current_load(m)
        values = {"STATISTIC_SERVER_SIDE_BYTES_IN": m.traffic.bits_in // 8,
                  "STATISTIC_SERVER_SIDE_BYTES_OUT": m.traffic.bits_out // 8,
                  "STATISTIC_SERVER_SIDE_PACKETS_IN": 0, "STATISTIC_SERVER_SIDE_PACKETS_OUT": 0,
                  "STATISTIC_SERVER_SIDE_CURRENT_CONNECTIONS": conns,
                  "STATISTIC_SERVER_SIDE_MAXIMUM_CONNECTIONS": m.traffic.max_conns,
                  "STATISTIC_SERVER_SIDE_TOTAL_CONNECTIONS": m.traffic.tot_conns,
                  "STATISTIC_TOTAL_REQUESTS": m.traffic.tot_requests, "STATISTIC_CURRENT_SESSIONS": sessions}
        entries.append({"member": {"address": m.node.fullpath, "port": m.port},
                        "statistics": [{"type": t, "value": _u64(v), "time_stamp": 0} for t, v in values.items()]})
    now = time.gmtime(state.now())
    stamp = {"year": now.tm_year, "month": now.tm_mon, "day": now.tm_mday,
             "hour": now.tm_hour, "minute": now.tm_min, "second": now.tm_sec}
    return {"statistics": entries, "time_stamp": stamp}


def get_member_statistics(state, pool_names, members):
    return [_member_statistics(state, p, found) for p, found in _each_member(state, pool_names, members)]


def get_all_member_statistics(state, pool_names):
    pools = [_pool(state, n) for n in pool_names or []]
    return [_member_statistics(state, p, list(p.members.values())) for p in pools]


def get_version(state):
    return "BIG-IP_v%s" % state.version


IMPLEMENTATIONS = {("LocalLB.Pool", name): globals()[name] for name in wsdl.INTERFACES["LocalLB.Pool"]}
IMPLEMENTATIONS[("System.SystemInfo", "get_version")] = get_version
