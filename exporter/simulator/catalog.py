"""The product catalogue the generator draws billing items from.

Fees are in mills (1/1000 USD): a monthly fee per month, an hourly rate per hour. Each tier of a
category lists its child items (RAM, disks, port speed, OS...), because on SoftLayer a server's
own ``recurringFee`` covers only the chassis and its children carry the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple


@dataclass(frozen=True, slots=True)
class ChildTemplate:
    """One child billing item under a top-level item."""

    code: str
    name: str
    description: str
    fee: int  # monthly fee, mills
    rate: int  # hourly rate, mills per hour


@dataclass(frozen=True, slots=True)
class Tier:
    """One size of a product: its own fees and its children."""

    description: str
    fee: int
    rate: int
    setup: int
    children: tuple[ChildTemplate, ...] = ()


@dataclass(frozen=True, slots=True)
class Category:
    """A top-level billing category and how the generator uses it."""

    code: str
    name: str
    category_id: int
    quantity_limit: int
    weight: int  # relative frequency among generated items
    hourly_share: float  # fraction of generated items billed hourly
    has_host: bool  # hostName/domainName present
    has_resource: bool  # resourceTableId present
    located: bool  # carries a datacenter (else the "No Location" IMS pseudo-location)
    notes: bool  # carries notes (SSL certificates name their domain there)
    count_property: str | None  # the SoftLayer_Account *Count property it feeds
    tiers: tuple[Tier, ...]


def _c(code: str, name: str, description: str, fee: int, rate: int = 0) -> ChildTemplate:
    return ChildTemplate(code, name, description, fee, rate)


def _t(description: str, fee: int, rate: int, setup: int, *children: ChildTemplate) -> Tier:
    return Tier(description, fee, rate, setup, children)


class _Kind(NamedTuple):
    """What an item of a category carries besides its fees."""

    has_host: bool
    has_resource: bool
    located: bool
    notes: bool


#: A server, guest or dedicated host: host and domain name, resource id, datacenter.
_DEVICE = _Kind(has_host=True, has_resource=True, located=True, notes=False)
#: Storage, network, firewall...: a datacenter only.
_SERVICE = _Kind(has_host=False, has_resource=False, located=True, notes=False)
#: An SSL certificate: "No Location"; it names its domain in the notes.
_CERTIFICATE = _Kind(has_host=False, has_resource=False, located=False, notes=True)


# The rows below are positional like any table's; each column is named in the header comment.
def _category(  # noqa: PLR0917
    code: str,
    name: str,
    category_id: int,
    quantity_limit: int,
    weight: int,
    hourly_share: float,
    kind: _Kind,
    count_property: str | None,
    *tiers: Tier,
) -> Category:
    return Category(
        code,
        name,
        category_id,
        quantity_limit,
        weight,
        hourly_share,
        kind.has_host,
        kind.has_resource,
        kind.located,
        kind.notes,
        count_property,
        tiers,
    )


_REMOTE = _c("remote_management", "Remote Management", "Reboot / Remote Console", 0)
_PORT_100 = _c("port_speed", "Uplink Port Speeds", "100 Mbps Public & Private Network Uplinks", 0)
_PORT_1G = _c(
    "port_speed",
    "Uplink Port Speeds",
    "1 Gbps Redundant Public & Private Network Uplinks",
    20000,
    28,
)
_UBUNTU = _c("os", "Operating System", "Ubuntu Linux 22.04 LTS Jammy Jellyfish (64 bit)", 0)
_RHEL = _c("os", "Operating System", "Red Hat Enterprise Linux 9.x (64 bit)", 49000, 68)
_WINDOWS = _c("os", "Operating System", "Windows Server 2022 Standard Edition (64 bit)", 40000, 56)

# A table: one row a category, one a tier under it (description, monthly fee, hourly rate,
# setup fee), one a child under that (code, name, description, monthly fee, hourly rate).
# fmt: off
CATEGORIES: Final[tuple[Category, ...]] = (
    # code, name, categoryId, quantityLimit, weight, hourly share, kind, its *Count property
    _category("guest_core", "Computing Instance", 80, 20, 40, 0.6, _DEVICE, "virtualGuestCount",
        _t("1 x 2.0 GHz or higher Core", 25000, 24, 0,
            _c("ram", "RAM", "2 GB", 10000, 14),
            _c("guest_disk0", "First Disk", "25 GB (SAN)", 0),
            _PORT_100, _UBUNTU, _REMOTE),
        _t("2 x 2.0 GHz or higher Cores", 50000, 48, 0,
            _c("ram", "RAM", "4 GB", 20000, 28),
            _c("guest_disk0", "First Disk", "100 GB (SAN)", 7000, 10),
            _PORT_100, _RHEL, _REMOTE),
        _t("8 x 2.0 GHz or higher Cores", 180000, 190, 0,
            _c("ram", "RAM", "32 GB", 120000, 140),
            _c("guest_disk0", "First Disk", "100 GB (SAN)", 7000, 10),
            _c("guest_disk1", "Second Disk", "500 GB (SAN)", 30000, 42),
            _PORT_1G, _WINDOWS, _REMOTE)),
    _category("server", "Server", 46, 1, 8, 0.1, _DEVICE, "hardwareCount",
        _t("Dual Intel Xeon Silver 4210 (20 Cores, 2.20 GHz)", 450000, 625, 0,
            _c("ram", "RAM", "64 GB RAM", 75000, 104),
            _c("hard_drive", "Hard Drive", "960GB SSD (3 DWPD)", 45000, 63),
            _PORT_1G, _RHEL, _REMOTE,
            _c("second_processor", "Second Processor", "Intel Xeon (12 Cores, 2.40 GHz)", 0)),
        _t("Dual E5-2690 v3 (12 Cores, 2.60 GHz)", 329000, 457, 0,
            _c("ram", "RAM", "128 GB RAM", 150000, 208),
            _c("hard_drive", "Hard Drive", "2.00 TB SATA", 20000, 28),
            _PORT_1G, _UBUNTU, _REMOTE)),
    _category("storage_service_enterprise", "Endurance", 1044, 1, 10, 0.0, _SERVICE,
              "networkStorageCount",
        _t("Endurance Storage", 0, 0, 0,
            _c("storage_service_enterprise", "Block Storage", "Block Storage", 0),
            _c("storage_tier_level", "Storage Tier Level", "0.25 IOPS per GB", 0),
            _c("performance_storage_space", "Storage Space", "20 GB Storage Space", 2900),
            _c("storage_snapshot_space", "Storage Snapshot Space",
               "10 GB Storage Space (Snapshot Space)", 1500)),
        _t("Endurance Storage", 0, 0, 0,
            _c("storage_tier_level", "Storage Tier Level", "4 IOPS per GB", 0),
            _c("performance_storage_space", "Storage Space", "1000 GB Storage Space", 206000))),
    _category("storage_as_a_service", "Storage As A Service", 759, 1, 6, 0.2, _SERVICE,
              "networkStorageCount",
        _t("Storage as a Service", 0, 0, 0,
            _c("storage_tier_level", "Storage Tier Level", "2 IOPS per GB", 0),
            _c("performance_storage_space", "Storage Space", "500 GB Storage Space", 72500, 100))),
    _category("bandwidth", "Public Bandwidth", 10, 1, 5, 0.0, _SERVICE, None,
        _t("20000 GB Bandwidth Allotment", 0, 0, 0),
        _t("Bandwidth Overage (125 GB * .09)", 11250, 0, 0)),
    _category("network_vlan", "Network Vlan", 111, 1, 5, 0.0, _SERVICE, "networkVlanCount",
        _t("Private Network Vlan", 0, 0, 0),
        _t("Public Network Vlan", 25000, 0, 0)),
    _category("sov_sec_ip_addresses_pub", "Public Secondary IP Addresses", 14, 1, 4, 0.0,
              _SERVICE, "subnetCount",
        _t("8 Public IP Addresses", 16000, 0, 0),
        _t("4 Public IP Addresses", 8000, 0, 0)),
    _category("vlan_firewall", "VLAN Firewall", 200, 1, 2, 0.0, _SERVICE, None,
        _t("FortiGate Security Appliance", 299000, 0, 0,
            _c("firewall_license", "Firewall License", "FortiGate Security Appliance License", 0))),
    _category("load_balancer_as_a_service", "Load Balancer As A Service", 1077, 1, 2, 1.0,
              _SERVICE, None,
        _t("Load Balancer As A Service", 0, 30, 0,
            _c("load_balancer_data_processed", "Data Processed", "Data Processed", 0, 6))),
    _category("ssl_certificate", "SSL Certificate", 104, 1, 2, 0.0, _CERTIFICATE, None,
        _t("RapidSSL - 1 year", 0, 0, 4900)),
    _category("dedicated_virtual_hosts", "Dedicated Host", 1106, 1, 1, 1.0, _DEVICE,
              "dedicatedHostCount",
        _t("56 Cores X 242 RAM X 1.2 TB", 0, 0, 0,
            _c("dedicated_host_ram", "Dedicated Host RAM", "242 GB", 0, 2100),
            _c("dedicated_host_disk", "Dedicated Host Disk", "1.2 TB Local Storage", 0, 400))),
)
# fmt: on


CATEGORY_INDEX: Final = {c.code: i for i, c in enumerate(CATEGORIES)}

#: (id, longName, name) of the datacenters items are spread over.
LOCATIONS: Final = (
    (265592, "Amsterdam 1", "ams01"),
    (814994, "Amsterdam 3", "ams03"),
    (1441195, "Dallas 10", "dal10"),
    (449494, "Dallas 9", "dal09"),
    (449600, "Frankfurt 2", "fra02"),
    (358694, "London 2", "lon02"),
    (168642, "San Jose 1", "sjc01"),
    (2017603, "Washington 7", "wdc07"),
    (2344594, "Mexico 1", "mex01"),
)
#: Where SoftLayer files items with no datacenter.
NO_LOCATION: Final = (0, "No Location", "IMS")

COMPANY_NAMES: Final = (
    "Acme Hosting",
    "Globex Cloud Services",
    "Initech Platform",
    "Umbrella Research IaaS",
    "Stark Data Centers",
    "Wayne Compute",
)


@dataclass(frozen=True, slots=True)
class Currency:
    """A SoftLayer_Billing_Currency the generator can bill an account in.

    Properties ``id``, ``keyName`` and ``name`` (SLDN SoftLayer_Billing_Currency datatype page,
    softlayer/githubio_source ``content/reference/datatypes/SoftLayer_Billing_Currency``). No
    public capture shows one: the ids, ISO-style key names and names are INFERRED (the only
    fixture, softlayer-python's hand-written ``getBillingInfo``, has id 1 for US dollars).
    ``base_rate`` is the rate of 1 USD in this currency the generator drifts around (None for
    USD, which has no exchange rate).
    """

    id: int
    key_name: str
    name: str
    base_rate: str | None


#: Currencies by key name. USD first: every amount SoftLayer returns is USD (SLDN: "measured
#: in US Dollars"); the others only describe how an account is billed locally.
CURRENCIES: Final = {
    c.key_name: c
    for c in (
        Currency(1, "USD", "US Dollar", None),
        Currency(2, "EUR", "Euro", "0.9214"),
        Currency(3, "GBP", "British Pound", "0.7931"),
        Currency(4, "JPY", "Japanese Yen", "151.37"),
        Currency(5, "CAD", "Canadian Dollar", "1.3642"),
    )
}
#: accountStatusId and SoftLayer_Account_Status.name of an active account (softlayer-cli
#: fixture ``SoftLayer_Account/getObject_missingPendingInvoice.json``: ``{"id": 1001,
#: "name": "Active"}``).
ACTIVE_STATUS: Final = (1001, "Active")
