"""A small iControl SOAP interface description, written for this emulator.

It declares only the calls the emulator serves, in rpc/encoded style under
the ``urn:iControl`` namespace, with method and type names as bigsuds users
know them (reference §9). The same tables drive the WSDL documents and the
encoding of requests and answers in ``soap.py``, so they cannot disagree.
"""
from xml.sax.saxutils import quoteattr

XSD = "http://www.w3.org/2001/XMLSchema"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"

# Enumerations: type -> allowed values.
ENUMS = {
    "Common.EnabledState": ["STATE_DISABLED", "STATE_ENABLED"],
    "LocalLB.SessionStatus": ["SESSION_STATUS_ENABLED", "SESSION_STATUS_ADDRESS_DISABLED",
                              "SESSION_STATUS_SERVICE_DISABLED", "SESSION_STATUS_DISABLED",
                              "SESSION_STATUS_FORCED_DISABLED"],
    "LocalLB.MonitorStatus": ["MONITOR_STATUS_UNCHECKED", "MONITOR_STATUS_CHECKING", "MONITOR_STATUS_UP",
                              "MONITOR_STATUS_DOWN", "MONITOR_STATUS_FORCED_DOWN", "MONITOR_STATUS_MAINT",
                              "MONITOR_STATUS_ADDRESS_DOWN"],
    "LocalLB.AvailabilityStatus": ["AVAILABILITY_STATUS_NONE", "AVAILABILITY_STATUS_GREEN",
                                   "AVAILABILITY_STATUS_YELLOW", "AVAILABILITY_STATUS_RED",
                                   "AVAILABILITY_STATUS_BLUE", "AVAILABILITY_STATUS_GRAY"],
    "LocalLB.EnabledStatus": ["ENABLED_STATUS_NONE", "ENABLED_STATUS_ENABLED", "ENABLED_STATUS_DISABLED",
                              "ENABLED_STATUS_DISABLED_BY_PARENT"],
    "Common.StatisticType": ["STATISTIC_SERVER_SIDE_BYTES_IN", "STATISTIC_SERVER_SIDE_BYTES_OUT",
                             "STATISTIC_SERVER_SIDE_PACKETS_IN", "STATISTIC_SERVER_SIDE_PACKETS_OUT",
                             "STATISTIC_SERVER_SIDE_CURRENT_CONNECTIONS",
                             "STATISTIC_SERVER_SIDE_MAXIMUM_CONNECTIONS",
                             "STATISTIC_SERVER_SIDE_TOTAL_CONNECTIONS", "STATISTIC_TOTAL_REQUESTS",
                             "STATISTIC_CURRENT_SESSIONS"],
}

# Structures: type -> ordered (field, type).
STRUCTS = {
    "Common.AddressPort": [("address", "xsd:string"), ("port", "xsd:long")],
    "Common.ULong64": [("high", "xsd:unsignedInt"), ("low", "xsd:unsignedInt")],
    "Common.Statistic": [("type", "Common.StatisticType"), ("value", "Common.ULong64"),
                         ("time_stamp", "xsd:long")],
    "Common.TimeStamp": [("year", "xsd:long"), ("month", "xsd:long"), ("day", "xsd:long"),
                         ("hour", "xsd:long"), ("minute", "xsd:long"), ("second", "xsd:long")],
    "LocalLB.ObjectStatus": [("availability_status", "LocalLB.AvailabilityStatus"),
                             ("enabled_status", "LocalLB.EnabledStatus"),
                             ("status_description", "xsd:string")],
    "LocalLB.Pool.MemberStatisticEntry": [("member", "Common.AddressPort"),
                                          ("statistics", "Common.StatisticSequence")],
    "LocalLB.Pool.MemberStatistics": [("statistics", "LocalLB.Pool.MemberStatisticEntrySequence"),
                                      ("time_stamp", "Common.TimeStamp")],
}

# Arrays: type -> item type. iControl names a list "<Item>Sequence" and a
# list of lists "<Item>SequenceSequence".
ARRAYS = {"Common.StringSequence": "xsd:string"}
for _item in ["Common.AddressPort", "Common.EnabledState", "LocalLB.SessionStatus", "LocalLB.MonitorStatus",
              "LocalLB.ObjectStatus"]:
    ARRAYS[_item + "Sequence"] = _item
    ARRAYS[_item + "SequenceSequence"] = _item + "Sequence"
ARRAYS["Common.StatisticSequence"] = "Common.Statistic"
ARRAYS["LocalLB.Pool.MemberStatisticEntrySequence"] = "LocalLB.Pool.MemberStatisticEntry"
ARRAYS["LocalLB.Pool.MemberStatisticsSequence"] = "LocalLB.Pool.MemberStatistics"

_POOLS = ("pool_names", "Common.StringSequence")
_MEMBERS = ("members", "Common.AddressPortSequenceSequence")

# Interfaces: name -> {method: ([(param, type)], return type or None)}.
INTERFACES = {
    "LocalLB.Pool": {
        "get_list": ([], "Common.StringSequence"),
        "get_member_v2": ([_POOLS], "Common.AddressPortSequenceSequence"),
        "add_member_v2": ([_POOLS, _MEMBERS], None),
        "remove_member_v2": ([_POOLS, _MEMBERS], None),
        "set_member_session_enabled_state": (
            [_POOLS, _MEMBERS, ("session_states", "Common.EnabledStateSequenceSequence")], None),
        "set_member_monitor_state": (
            [_POOLS, _MEMBERS, ("monitor_states", "Common.EnabledStateSequenceSequence")], None),
        "get_member_session_status": ([_POOLS, _MEMBERS], "LocalLB.SessionStatusSequenceSequence"),
        "get_member_monitor_status": ([_POOLS, _MEMBERS], "LocalLB.MonitorStatusSequenceSequence"),
        "get_member_object_status": ([_POOLS, _MEMBERS], "LocalLB.ObjectStatusSequenceSequence"),
        "get_member_statistics": ([_POOLS, _MEMBERS], "LocalLB.Pool.MemberStatisticsSequence"),
        "get_all_member_statistics": ([_POOLS], "LocalLB.Pool.MemberStatisticsSequence"),
    },
    "System.SystemInfo": {
        "get_version": ([], "xsd:string"),
    },
}


def service_namespace(interface):
    """'LocalLB.Pool' -> 'urn:iControl:LocalLB/Pool' (also the SOAPAction)."""
    return "urn:iControl:" + interface.replace(".", "/", 1)


def qname(type_name):
    return type_name if type_name.startswith("xsd:") else "tns:" + type_name


def _used_types(interface):
    """Every type an interface's methods reach, so each WSDL stays minimal."""
    seen, todo = set(), []
    for params, ret in INTERFACES[interface].values():
        todo.extend(t for _, t in params)
        if ret:
            todo.append(ret)
    while todo:
        name = todo.pop()
        if name.startswith("xsd:") or name in seen:
            continue
        seen.add(name)
        if name in ARRAYS:
            todo.append(ARRAYS[name])
        elif name in STRUCTS:
            todo.extend(t for _, t in STRUCTS[name])
    return sorted(seen)


def _schema_type(name):
    if name in ENUMS:
        values = "".join('<xsd:enumeration value="%s"/>' % v for v in ENUMS[name])
        return '<xsd:simpleType name="%s"><xsd:restriction base="xsd:string">%s</xsd:restriction></xsd:simpleType>' \
            % (name, values)
    if name in STRUCTS:
        fields = "".join('<xsd:element name="%s" type="%s"/>' % (f, qname(t)) for f, t in STRUCTS[name])
        return '<xsd:complexType name="%s"><xsd:all>%s</xsd:all></xsd:complexType>' % (name, fields)
    return ('<xsd:complexType name="%s"><xsd:complexContent><xsd:restriction base="SOAP-ENC:Array">'
            '<xsd:attribute ref="SOAP-ENC:arrayType" wsdl:arrayType="%s[]"/></xsd:restriction>'
            '</xsd:complexContent></xsd:complexType>' % (name, qname(ARRAYS[name])))


def render(interface, location):
    """The WSDL document for one interface, served at ?WSDL=<interface>."""
    methods = INTERFACES[interface]
    ns = service_namespace(interface)
    messages, operations, bindings = [], [], []
    for name, (params, ret) in methods.items():
        parts = "".join('<part name="%s" type="%s"/>' % (p, qname(t)) for p, t in params)
        messages.append('<message name="%s.%sRequest">%s</message>' % (interface, name, parts))
        out = '<part name="return" type="%s"/>' % qname(ret) if ret else ""
        messages.append('<message name="%s.%sResponse">%s</message>' % (interface, name, out))
        operations.append('<operation name="%s"><input message="tns:%s.%sRequest"/>'
                          '<output message="tns:%s.%sResponse"/></operation>'
                          % (name, interface, name, interface, name))
        enc = '<soap:body use="encoded" namespace="%s" encodingStyle="%s"/>' % (ns, SOAP_ENC)
        bindings.append('<operation name="%s"><soap:operation soapAction="%s"/><input>%s</input>'
                        '<output>%s</output></operation>' % (name, ns, enc, enc))
    types = "".join(_schema_type(t) for t in _used_types(interface))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!-- Written for the gentle.lb F5 emulator: a minimal description of the calls it serves. -->\n'
        '<definitions name=%s targetNamespace="urn:iControl" xmlns:tns="urn:iControl" '
        'xmlns:xsd="%s" xmlns:SOAP-ENC="%s" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" '
        'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns="http://schemas.xmlsoap.org/wsdl/">'
        '<types><xsd:schema targetNamespace="urn:iControl">%s</xsd:schema></types>'
        '%s<portType name="%sPortType">%s</portType>'
        '<binding name="%sBinding" type="tns:%sPortType">'
        '<soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>%s</binding>'
        '<service name="%s"><port name="%sPort" binding="tns:%sBinding"><soap:address location=%s/></port>'
        '</service></definitions>\n'
        % (quoteattr(interface), XSD, SOAP_ENC, types, "".join(messages), interface, "".join(operations),
           interface, interface, "".join(bindings), interface, interface, interface, quoteattr(location))
    )


def portal_index():
    """The portal's index page: one link per served WSDL (bigsuds' get_wsdls parses it)."""
    links = "".join('<li><a href="/iControl/iControlPortal.cgi?WSDL=%s">%s</a></li>\n' % (n, n)
                    for n in sorted(INTERFACES))
    return ("<html><head><title>iControl Portal (emulated)</title></head><body>\n"
            "<h1>iControl Portal (emulated)</h1>\n<ul>\n%s</ul>\n</body></html>\n" % links)
