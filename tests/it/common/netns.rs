//! A host of the test's own: a network namespace reached over a veth pair. Link-local
//! addresses, and an `unreachable` route behind the veth's, keep every packet on this
//! machine even after the namespace is gone.

use std::process::Command;

pub struct NetnsHost {
    pub ns: String,
    host_if: String,
    peer_if: String,
    /// The /24 of link-local space it uses: 169.254.`subnet`.0.
    subnet: u8,
}

impl NetnsHost {
    /// A namespace whose end of the veth is 169.254.`subnet`.2 (this side's is .1) in a
    /// /29, with its loopback up. Needs root and iproute2.
    pub fn create(tag: &str, subnet: u8) -> Self {
        let id = std::process::id() % 100_000;
        let host = NetnsHost {
            ns: format!("meridian-{tag}-{id}"),
            host_if: format!("mr{tag}h{id}"),
            peer_if: format!("mr{tag}p{id}"),
            subnet,
        };
        let peer_if = host.peer_if.as_str();
        host.cleanup();
        let ns = host.ns.as_str();
        for cmd in [
            format!("ip route add unreachable 169.254.{subnet}.0/24"),
            format!("ip netns add {ns}"),
            format!("ip link add {} type veth peer name {peer_if}", host.host_if),
            format!("ip link set {peer_if} netns {ns}"),
            format!("ip addr add {} dev {}", host.near_cidr(), host.host_if),
            format!("ip link set {} up", host.host_if),
            format!(
                "ip netns exec {ns} ip addr add {}/29 dev {peer_if}",
                host.far()
            ),
            format!("ip netns exec {ns} ip link set {peer_if} up"),
            format!("ip netns exec {ns} ip link set lo up"),
        ] {
            sh(&cmd).unwrap_or_else(|e| panic!("{cmd}: {e} (this test needs root and iproute2)"));
        }
        host
    }

    /// This side's end of the veth pair.
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// The namespace's address.
    pub fn far(&self) -> String {
        format!("169.254.{}.2", self.subnet)
    }

    /// This side's address.
    pub fn near(&self) -> String {
        format!("169.254.{}.1", self.subnet)
    }

    fn near_cidr(&self) -> String {
        format!("{}/29", self.near())
    }

    /// One more address of the /29 (3 to 6): on this side, or in the namespace.
    pub fn add_address(&self, octet: u8, in_namespace: bool) -> String {
        let addr = format!("169.254.{}.{octet}", self.subnet);
        let cmd = if in_namespace {
            format!(
                "ip netns exec {} ip addr add {addr}/29 dev {}",
                self.ns, self.peer_if
            )
        } else {
            format!("ip addr add {addr}/29 dev {}", self.host_if)
        };
        sh(&cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        addr
    }

    /// Stops traffic between `near` (this side's address) and `far` (the namespace's),
    /// both ways, and leaves the others alone.
    pub fn cut(&self, near: &str, far: &str) {
        sh(&format!("ip route add blackhole {far}/32")).unwrap();
        sh(&format!(
            "ip netns exec {} ip route add blackhole {near}/32",
            self.ns
        ))
        .unwrap();
    }

    /// Undoes [`NetnsHost::cut`].
    pub fn mend(&self, near: &str, far: &str) {
        sh(&format!("ip route del blackhole {far}/32")).unwrap();
        sh(&format!(
            "ip netns exec {} ip route del blackhole {near}/32",
            self.ns
        ))
        .unwrap();
    }

    /// IPv6 addresses for both ends, fd00:`subnet`::1 on this side and ::2 in the
    /// namespace, usable at once (no duplicate address detection): (near, far).
    pub fn add_ipv6(&self) -> (String, String) {
        let near = format!("fd00:{}::1", self.subnet);
        let far = format!("fd00:{}::2", self.subnet);
        sh(&format!(
            "ip -6 addr add {near}/64 dev {} nodad",
            self.host_if
        ))
        .unwrap();
        sh(&format!(
            "ip netns exec {} ip -6 addr add {far}/64 dev {} nodad",
            self.ns, self.peer_if
        ))
        .unwrap();
        (near, far)
    }

    /// Sets the MTU of both ends of the veth pair.
    pub fn set_mtu(&self, mtu: u32) {
        sh(&format!("ip link set {} mtu {mtu}", self.host_if)).unwrap();
        sh(&format!(
            "ip netns exec {} ip link set {} mtu {mtu}",
            self.ns, self.peer_if
        ))
        .unwrap();
    }

    /// A command run inside the namespace: `ip netns exec NS program`.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]);
        cmd
    }

    /// The host vanishes: namespace and veth pair are torn down.
    pub fn remove(&self) {
        sh(&format!("ip netns del {}", self.ns)).unwrap();
        let _ = sh(&format!("ip link del {}", self.host_if));
    }

    fn cleanup(&self) {
        let _ = sh(&format!("ip netns del {}", self.ns));
        let _ = sh(&format!("ip link del {}", self.host_if));
        let _ = sh(&format!(
            "ip route del unreachable 169.254.{}.0/24",
            self.subnet
        ));
        for octet in 1..=6 {
            let _ = sh(&format!(
                "ip route del blackhole 169.254.{}.{octet}/32",
                self.subnet
            ));
        }
    }
}

impl Drop for NetnsHost {
    fn drop(&mut self) {
        self.cleanup();
    }
}

pub fn sh(cmd: &str) -> Result<(), String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
