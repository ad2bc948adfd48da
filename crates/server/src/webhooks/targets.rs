//! Where webhooks may be sent: public addresses only, unless the server is told otherwise
//! (`webhooks_allow_private_targets`, for tests and closed networks).
//!
//! A webhook URL is chosen by a tenant, so without this check a tenant could make Patron's
//! server call its own loopback services, the private network it sits in, or the cloud's
//! metadata endpoint (169.254.169.254), and read the answers' fate in the delivery log. The URL
//! is checked when it is subscribed ([`check_url`], which also resolves its name), and again at
//! every delivery: an address literal before the request ([`literal_allowed`]), a name by the
//! HTTP client's resolver ([`CheckedResolver`]), which hands the client only addresses it has
//! checked, so a name cannot resolve to a public address at the check and a private one at the
//! connection (DNS rebinding).

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Longest wait for a subscribed URL's name to resolve at subscription. A name that does not
/// resolve in time is accepted: every delivery checks it again.
pub const SUBSCRIBE_RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The fixed reason recorded for a delivery to a refused address.
pub const ADDRESS_NOT_ALLOWED: &str = "address not allowed";

/// Why a URL cannot be subscribed.
#[derive(Debug, PartialEq, Eq)]
pub enum UrlRefusal {
    /// Not an `http://` or `https://` URL with a host.
    Malformed,
    /// The host is, or resolves to, a loopback, private, link-local or otherwise non-public
    /// address.
    AddressNotAllowed,
}

impl UrlRefusal {
    /// The message of the API's 422, naming what is wrong.
    pub fn message(&self) -> &'static str {
        match self {
            UrlRefusal::Malformed => "must be an http:// or https:// URL with a host",
            UrlRefusal::AddressNotAllowed => {
                "must point at a public address: loopback, private, link-local, shared, \
                 multicast and documentation addresses (and names that resolve to them) are refused"
            }
        }
    }
}

/// The refusal the resolver returns; the dispatcher finds it in the request's error causes.
#[derive(Debug)]
pub struct AddressRefused;

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(ADDRESS_NOT_ALLOWED)
    }
}

impl std::error::Error for AddressRefused {}

/// Whether Patron may send to `address`: only globally routable unicast addresses.
pub fn address_allowed(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => ipv4_allowed(v4),
        IpAddr::V6(v6) => ipv6_allowed(v6),
    }
}

/// IPv4 blocks that are not the public internet (RFC 6890 and friends), as (network, prefix).
const IPV4_REFUSED: [([u8; 4], u32); 16] = [
    ([0, 0, 0, 0], 8),       // "this network", and the unspecified address
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (carrier-grade NAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local, cloud metadata services
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the broadcast address
    ([255, 255, 255, 255], 32),
];

fn ipv4_allowed(address: Ipv4Addr) -> bool {
    let bits = u32::from(address);
    !IPV4_REFUSED.iter().any(|(network, prefix)| {
        let mask = u32::MAX << (32 - prefix);
        bits & mask == u32::from_be_bytes(*network) & mask
    })
}

/// IPv6 blocks that are not the public internet, as (network, prefix).
const IPV6_REFUSED: [(u128, u32); 10] = [
    (0, 128),                          // unspecified
    (1, 128),                          // loopback
    (0x0100_0000_0000_0000 << 64, 64), // discard-only
    (0x2001_0db8 << 96, 32),           // documentation
    (0x3fff << 112, 20),               // documentation (RFC 9637)
    (0x0064_ff9b_0001 << 80, 48),      // local-use NAT64
    (0xfc00 << 112, 7),                // unique local
    (0xfe80 << 112, 10),               // link-local
    (0xfec0 << 112, 10),               // site-local (deprecated)
    (0xff00 << 112, 8),                // multicast
];

fn ipv6_allowed(address: Ipv6Addr) -> bool {
    // An IPv4 address carried inside an IPv6 one reaches that IPv4 address: judge it as such.
    if let Some(v4) = embedded_ipv4(address) {
        return ipv4_allowed(v4);
    }
    let bits = u128::from(address);
    !IPV6_REFUSED.iter().any(|(network, prefix)| {
        let mask = u128::MAX << (128 - prefix);
        bits & mask == network & mask
    })
}

/// The IPv4 address inside IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// well-known NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses.
fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(address);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let top_96 = bits >> 32;
    if top_96 == 0xffff || (top_96 == 0 && bits > 1) || top_96 == 0x0064_ff9b << 64 {
        return Some(low);
    }
    if bits >> 112 == 0x2002 {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

/// The host of a parsed URL as an address, when it is one (`[::1]` loses its brackets).
fn host_address(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let bare = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Names that mean this machine whatever DNS says (RFC 6761).
fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Whether a delivery may go to `url` as far as its host is an address literal; names are
/// left to [`CheckedResolver`]. A URL that does not parse is refused.
pub fn literal_allowed(url: &str, allow_private: bool) -> bool {
    let Ok(parsed) = Url::parse(url) else {
        return false;
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return false;
    }
    allow_private || host_address(&parsed).is_none_or(address_allowed)
}

/// Checks a URL about to be subscribed: http(s) with a host, and, unless `allow_private`, a
/// host that is a public address or a name none of whose addresses is refused.
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), UrlRefusal> {
    let parsed = Url::parse(url.trim()).map_err(|_| UrlRefusal::Malformed)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlRefusal::Malformed);
    }
    let Some(host) = parsed.host_str().map(str::to_owned) else {
        return Err(UrlRefusal::Malformed);
    };
    if allow_private {
        return Ok(());
    }
    if let Some(address) = host_address(&parsed) {
        if address_allowed(address) {
            return Ok(());
        }
        return Err(UrlRefusal::AddressNotAllowed);
    }
    if is_local_name(&host) {
        return Err(UrlRefusal::AddressNotAllowed);
    }
    let resolved = tokio::time::timeout(
        SUBSCRIBE_RESOLVE_TIMEOUT,
        tokio::net::lookup_host((host, 0)),
    )
    .await;
    match resolved {
        Ok(Ok(addresses)) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses
                .iter()
                .all(|address| address_allowed(address.ip()))
            {
                Ok(())
            } else {
                Err(UrlRefusal::AddressNotAllowed)
            }
        }
        // Not resolvable now (a name set up later, DNS down): each delivery checks again.
        Ok(Err(_)) | Err(_) => Ok(()),
    }
}

/// The dispatcher's resolver: resolves a name, refuses it if any of its addresses is refused,
/// and otherwise gives the HTTP client exactly the addresses it checked to connect to.
#[derive(Clone, Debug)]
pub struct CheckedResolver {
    pub allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let refused = !allow_private
                && (is_local_name(name.as_str())
                    || addresses
                        .iter()
                        .any(|address| !address_allowed(address.ip())));
            if refused {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Whether `error`, or any of its causes, is the resolver's [`AddressRefused`].
pub fn is_address_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.downcast_ref::<AddressRefused>().is_some() {
            return true;
        }
        cause = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(text: &str) -> bool {
        address_allowed(text.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges_are_refused_up_to_their_edges() {
        for refused in [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.0",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.0.1",
            "192.168.255.255",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!allowed(refused), "{refused} must be refused");
        }
        for public in [
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "93.184.215.14",
        ] {
            assert!(allowed(public), "{public} is public");
        }
    }

    #[test]
    fn ipv6_ranges_and_embedded_ipv4_are_refused() {
        for refused in [
            "::",
            "::1",
            "fc00::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::c0a8:1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ] {
            assert!(!allowed(refused), "{refused} must be refused");
        }
        for public in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "fbff:ffff::1",
            "fe7f::1",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::1",
            "2001:db9::1",
        ] {
            assert!(allowed(public), "{public} is public");
        }
    }

    #[test]
    fn literals_in_every_spelling_are_judged_by_their_address() {
        for refused in [
            "http://127.0.0.1:8080/hooks",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://017700000001/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://169.254.169.254/latest/meta-data/",
            "gopher://1.1.1.1/",
            "not a url",
        ] {
            assert!(!literal_allowed(refused, false), "{refused}");
        }
        assert!(literal_allowed("http://127.0.0.1:8080/hooks", true));
        assert!(literal_allowed("https://1.1.1.1/hooks", false));
        assert!(
            literal_allowed("https://hooks.example.com/x", false),
            "names go to the resolver"
        );
    }

    #[tokio::test]
    async fn subscribing_checks_literals_and_local_names() {
        for (url, refusal) in [
            ("http://10.1.2.3/hooks", UrlRefusal::AddressNotAllowed),
            ("http://localhost:9000/", UrlRefusal::AddressNotAllowed),
            ("http://api.LOCALHOST./", UrlRefusal::AddressNotAllowed),
            ("http://[fd00::1]/", UrlRefusal::AddressNotAllowed),
            ("ftp://1.1.1.1/", UrlRefusal::Malformed),
            ("https://", UrlRefusal::Malformed),
        ] {
            assert_eq!(check_url(url, false).await, Err(refusal), "{url}");
        }
        assert_eq!(check_url("https://1.1.1.1/hooks", false).await, Ok(()));
        assert_eq!(check_url("http://localhost:9000/", true).await, Ok(()));
        assert_eq!(
            check_url("ftp://localhost/", true).await,
            Err(UrlRefusal::Malformed)
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_any_refused_address() {
        // A name that resolves to 127.0.0.1 without being called localhost.
        let name = || "127.0.0.1".parse::<Name>().unwrap();
        let refusing = CheckedResolver {
            allow_private: false,
        };
        let error = match refusing.resolve(name()).await {
            Ok(_) => panic!("127.0.0.1 was handed to the client"),
            Err(error) => error,
        };
        assert!(is_address_refused(error.as_ref()), "{error}");
        let allowing = CheckedResolver {
            allow_private: true,
        };
        let addresses: Vec<SocketAddr> = allowing.resolve(name()).await.unwrap().collect();
        assert_eq!(addresses, [SocketAddr::from(([127, 0, 0, 1], 0))]);
    }
}
