"""Error bodies, byte for byte in the shapes real devices send (reference §6).

Two families exist on a device: errors from mcpd (the configuration daemon)
carry ``errorStack`` and ``apiError``; errors from the REST framework itself
(restjavad: authentication, unknown URIs) carry ``restOperationId`` and
``kind: ":resterrorresponse"``. Clients tell them apart, so we keep both.
"""
import itertools

_rest_operation_ids = itertools.count(1000)


class F5Error(Exception):
    """An error answer: HTTP status plus the JSON body a device would send."""

    def __init__(self, status, body, headers=None):
        self.message = body.get("message", "") if isinstance(body, dict) else "HTTP %d" % status
        super().__init__(self.message)
        self.status = status
        self.body = body            # a dict (JSON), or text for the web server's own pages
        self.headers = headers or {}


def mcpd_error(code, message, api_error=3):
    return F5Error(code, {"code": code, "message": message, "errorStack": [], "apiError": api_error})


def rest_error(code, message, referer="127.0.0.1", **extra):
    body = {"code": code, "message": message, "referer": referer,
            "restOperationId": next(_rest_operation_ids), "kind": ":resterrorresponse"}
    body.update(extra)
    return F5Error(code, body)


def pool_not_found(pool_fp):
    return mcpd_error(404, "01020036:3: The requested Pool (%s) was not found." % pool_fp)


def member_not_found(pool_fp, node_fp, port):
    return mcpd_error(404, "01020036:3: The requested Pool Member (%s %s %d) was not found."
                      % (pool_fp, node_fp, port))


def member_exists(pool_fp, node_fp, port, partition):
    # The 409 carries no apiError on the captures we have (reference §6).
    return F5Error(409, {"code": 409, "errorStack": [], "message":
                         "01020066:3: The requested Pool Member (%s %s %d) already exists in partition %s."
                         % (pool_fp, node_fp, port, partition)})


def pool_exists(pool_fp, partition):
    return F5Error(409, {"code": 409, "errorStack": [], "message":
                         "01020066:3: The requested Pool (%s) already exists in partition %s."
                         % (pool_fp, partition)})


def node_not_found(node_fp):
    return mcpd_error(404, "01020036:3: The requested Node (%s) was not found." % node_fp)


def node_exists(node_fp, partition):
    return F5Error(409, {"code": 409, "errorStack": [], "message":
                         "01020066:3: The requested Node (%s) already exists in partition %s."
                         % (node_fp, partition)})


def node_referenced(node_fp, pool_fp):
    return mcpd_error(400, "01070110:3: Node address '%s' is referenced by a member of pool '%s'."
                      % (node_fp, pool_fp))


def node_address_taken(address):
    return mcpd_error(400, "0107176c:3: Invalid Node, the IP address %s already exists." % address)


def node_address_mismatch(member_node_fp, node_fp):
    return mcpd_error(400, "0107003a:3: Pool member node (%s) and existing node (%s) address mismatch."
                      % (member_node_fp, node_fp))


def folder_not_found(folder):
    return mcpd_error(404, "01020036:3: The requested folder (%s) was not found." % folder)


def bad_property(name, value):
    return mcpd_error(400, 'invalid property value "%s":"%s"' % (name, value), api_error=26214401)


def bad_request(message):
    return mcpd_error(400, message, api_error=1)


def access_denied(user, verb, kind):
    # Verbatim shape from devices (f5-ansible #2133: REST on 14.1; #313: SOAP).
    return mcpd_error(400, "01070822:3: Access Denied: user (%s) does not have %s access to object (%s)"
                      % (user, verb, kind))


def mcpd_lost():
    return mcpd_error(500, "The connection to mcpd has been lost, try again.", api_error=32768001)


def uri_not_registered(path):
    # restjavad reports the path without its /mgmt prefix.
    public = path[len("/mgmt"):] if path.startswith("/mgmt") else path
    return rest_error(404, "Public URI path not registered: %s" % public)


def method_not_allowed(method, path):
    return rest_error(405, "Method %s is not allowed on %s" % (method, path))
