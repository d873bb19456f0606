//! Vault roles end to end: fake Vault nodes on 127.0.4x.y answer `/v1/sys/health` and
//! `/v1/sys/leader` as Vault does, and DNS follows the roles and the leader consensus.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::backend::free_port;
use crate::common::vault::{FakeVault, NodeState};
use crate::common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const INTERVAL: Duration = Duration::from_millis(200);

/// A change lands just after a probe, then rise (2) more probes settle it; plus slack.
fn settle() -> Duration {
    INTERVAL * 3 + Duration::from_millis(600)
}

/// Three nodes on `127.0.{net}.1-3`, all on one port.
struct Cluster {
    nodes: Vec<FakeVault>,
    addrs: Vec<String>,
    port: u16,
}

impl Cluster {
    fn start(net: u8, states: [NodeState; 3], leader: Option<usize>) -> Self {
        let addrs: Vec<String> = (1..=3).map(|i| format!("127.0.{net}.{i}")).collect();
        let port = free_port(ip(&addrs[0]));
        let mut c = Cluster {
            nodes: Vec::new(),
            addrs,
            port,
        };
        for (i, state) in states.into_iter().enumerate() {
            let at = SocketAddr::new(ip(&c.addrs[i]), port);
            let leader = c.leader_url(leader);
            c.nodes.push(FakeVault::start(at, state, &leader));
        }
        c
    }

    /// Vault's `leader_address` for node `i`: its `api_addr`.
    fn leader_url(&self, i: Option<usize>) -> String {
        i.map_or(String::new(), |i| {
            format!("http://{}:{}", self.addrs[i], self.port)
        })
    }

    /// Sets every node's state, each naming `leader`.
    fn set(&self, states: [NodeState; 3], leader: Option<usize>) {
        let url = self.leader_url(leader);
        for (n, state) in self.nodes.iter().zip(states) {
            n.set(state, &url);
        }
    }

    /// A zone with the cluster name (`vault`: active, else the standbys, all of them) and
    /// the leader-only name (`active`: failing closed).
    fn zone(&self, zone: &str) -> String {
        let check = format!(
            "{{ type: vault, tls: false, port: {}, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }}",
            self.port
        );
        let members: String = self
            .addrs
            .iter()
            .map(|a| format!("      - {{ address: {a} }}\n"))
            .collect();
        format!(
            "zone: {zone}\nns: [ns1]\nfqdns:\n  vault:\n    selection: all-available\n    roles: [active, standby]\n    check: {check}\n    members:\n{members}  active:\n    roles: [active]\n    when-all-down: none\n    check: {check}\n    members:\n{members}  standbys:\n    selection: all-available\n    roles: [standby]\n    check: {check}\n    members:\n{members}"
        )
    }
}

use NodeState::*;

fn answers(s: &TestServer, name: &str) -> Vec<String> {
    let mut got = addresses(&s.ask(name, RecordType::A));
    got.sort();
    got
}

fn wait_answers(s: &TestServer, name: &str, want: &[&str]) -> Duration {
    eventually(settle(), &format!("{name} to answer {want:?}"), || {
        answers(s, name) == want
    })
}

fn with_admin(zone_file: &str, zone: &str) -> TestServer {
    let (dir, file) = write_config_with("admin: { listen: 127.0.0.1:0 }\n", &[(zone_file, zone)]);
    start_with(dir, &file)
}

/// Waits until `/explain` for `name` says `needle` (votes refresh with every probe, so
/// a vote can lag a role by one interval); returns the explanation.
fn wait_why(admin: SocketAddr, name: &str, needle: &str) -> serde_json::Value {
    let path = format!("/explain?name={name}&type=A&client=127.0.0.1");
    let mut last = serde_json::Value::Null;
    let found = eventually_or(settle(), || {
        last = serde_json::from_str(&http(admin, "GET", &path, None).1).unwrap();
        last["why"].as_str().unwrap_or_default().contains(needle)
    });
    assert!(found, "explain never said `{needle}`: {last}");
    last
}

fn eventually_or(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn step_down_sealed_leader_and_election_over_dns() {
    let c = Cluster::start(40, [Active, Standby, Standby], Some(0));
    let s = with_admin("v1.yaml", &c.zone("v1.test"));
    assert_eq!(answers(&s, "vault.v1.test."), ["127.0.40.1"]);
    assert_eq!(answers(&s, "active.v1.test."), ["127.0.40.1"]);
    assert_eq!(
        answers(&s, "standbys.v1.test."),
        ["127.0.40.2", "127.0.40.3"]
    );

    // `vault operator step-down`: node 1 becomes a standby, node 2 takes over.
    c.set([Standby, Active, Standby], Some(1));
    let took = wait_answers(&s, "vault.v1.test.", &["127.0.40.2"]);
    println!("step-down: DNS followed in {took:?}");
    assert_eq!(answers(&s, "active.v1.test."), ["127.0.40.2"]);

    // The leader is sealed; the election has not ended: nobody is active and the standbys
    // know no leader. The cluster name answers the standbys (they will forward once a
    // leader is elected), never the sealed node; the leader-only name has nothing.
    c.set([Standby, Sealed, Standby], None);
    let took = wait_answers(&s, "vault.v1.test.", &["127.0.40.1", "127.0.40.3"]);
    println!("sealed leader, election: standbys answered after {took:?}");
    let r = s.ask("active.v1.test.", RecordType::A);
    assert_rcode(&r, ResponseCode::NoError);
    assert!(r.answers.is_empty(), "no leader: NODATA, {r:?}");
    let (_, body) = http(s.admin(), "GET", "/status", None);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sealed = status_member(&status, "vault.v1.test.", "127.0.40.2");
    assert_eq!(
        (sealed["up"].as_bool(), sealed["role"].as_str()),
        (Some(false), Some("sealed")),
        "{sealed}"
    );
    let standby = status_member(&status, "vault.v1.test.", "127.0.40.1");
    assert_eq!(
        (standby["up"].as_bool(), standby["role"].as_str()),
        (Some(true), Some("standby")),
        "{standby}"
    );
    let page = http(s.admin(), "GET", "/", None).1;
    assert!(
        page.contains(">standby</span>") && page.contains(">down: sealed</span>"),
        "{page}"
    );

    // Node 3 wins the election.
    c.set([Standby, Sealed, Active], Some(2));
    wait_answers(&s, "vault.v1.test.", &["127.0.40.3"]);
    assert_eq!(answers(&s, "active.v1.test."), ["127.0.40.3"]);
    let why = wait_why(
        s.admin(),
        "vault.v1.test",
        "roles: tier 1 (active) answers; 127.0.40.3 leads (majority, named by 2 of 2 voting)",
    );
    assert_eq!(why["answering_tier"], 1, "{why}");
    assert_eq!(why["leader"]["leader"], "127.0.40.3", "{why}");
    assert_eq!(why["leader"]["agreement"], "majority", "{why}");
}

#[test]
fn a_standby_without_its_heartbeat_is_up_but_no_standby() {
    // Vault 1.19's 474: unsealed and up, but it cannot forward to the active node.
    let c = Cluster::start(41, [Active, Standby, HaUnhealthy], Some(0));
    let zone = format!(
        "{}  node3:\n    check: {{ type: vault, tls: false, port: {}, interval: 200ms, timeout: 150ms }}\n    members: [{{ address: 127.0.41.3 }}]\n",
        c.zone("v2.test"),
        c.port
    );
    let s = with_admin("v2.yaml", &zone);
    assert_eq!(answers(&s, "standbys.v2.test."), ["127.0.41.2"]);
    assert_eq!(
        answers(&s, "node3.v2.test."),
        ["127.0.41.3"],
        "a node name takes any healthy role"
    );
    let (_, metrics) = http(s.admin(), "GET", "/metrics", None);
    for line in [
        r#"meridian_member_role{name="standbys.v2.test.",member="127.0.41.3",role="ha-unhealthy"} 1"#,
        r#"meridian_member_role{name="standbys.v2.test.",member="127.0.41.3",role="standby"} 0"#,
        r#"meridian_member_role{name="vault.v2.test.",member="127.0.41.1",role="active"} 1"#,
        r#"meridian_split_brain{name="vault.v2.test."} 0"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
    // It regains its heartbeat: a standby again.
    c.set([Active, Standby, Standby], Some(0));
    wait_answers(&s, "standbys.v2.test.", &["127.0.41.2", "127.0.41.3"]);
}

#[test]
fn two_nodes_claiming_active_answer_the_one_the_majority_names() {
    let c = Cluster::start(42, [Active, Active, Standby], Some(0));
    // Node 2 is a stale leader that still names itself.
    c.nodes[1].set(Active, &c.leader_url(Some(1)));
    let admin = SocketAddr::new(ip("127.0.0.1"), free_port(ip("127.0.0.1")));
    let (dir, file) = write_config_with(
        &format!("admin: {{ listen: {admin} }}\n"),
        &[("v3.yaml", &c.zone("v3.test"))],
    );
    let served = serve(&file);
    let ask = |name: &str| {
        let mut got = addresses(&udp_exchange(served.addr, &query(name, RecordType::A)));
        got.sort();
        got
    };
    let wait = |name: &str, want: &[&str]| {
        eventually(settle(), &format!("{name} to answer {want:?}"), || {
            ask(name) == want
        })
    };
    wait("vault.v3.test.", &["127.0.42.1"]);
    assert_eq!(ask("active.v3.test."), ["127.0.42.1"]);
    let metric = || http(admin, "GET", "/metrics", None).1;
    eventually(settle(), "meridian_split_brain 1", || {
        metric().contains("meridian_split_brain{name=\"vault.v3.test.\"} 1")
    });
    wait_why(
        admin,
        "active.v3.test",
        "split brain: 127.0.42.1 and 127.0.42.2 claim the leader role, the majority names 127.0.42.1",
    );
    eventually(Duration::from_secs(2), "the split brain logged", || {
        served.log_contains("split brain: more than one member claims the leader role")
    });

    // Node 3 now names node 2: the majority moves with it.
    c.nodes[2].set(Standby, &c.leader_url(Some(1)));
    wait("active.v3.test.", &["127.0.42.2"]);
    // Node 3 knows no leader: one vote each, no majority, and two claimants. Neither is
    // handed out; the cluster name falls to its standby.
    c.nodes[2].set(Standby, "");
    wait("vault.v3.test.", &["127.0.42.3"]);
    let r = udp_exchange(served.addr, &query("active.v3.test.", RecordType::A));
    assert!(r.answers.is_empty(), "{r:?}");
    // Node 2 steps down and names node 1: one claimant, the majority's.
    c.nodes[1].set(Standby, &c.leader_url(Some(0)));
    wait("vault.v3.test.", &["127.0.42.1"]);
    eventually(settle(), "the split brain over in metrics", || {
        metric().contains("meridian_split_brain{name=\"vault.v3.test.\"} 0")
    });
    eventually(
        Duration::from_secs(2),
        "the end of the split brain logged",
        || served.log_contains("split brain over"),
    );
    drop(dir);
}

#[test]
fn a_lone_reachable_leader_is_believed_when_no_node_names_another() {
    // Nodes 2 and 3 do not answer at all (nothing listens): no majority can be reached,
    // and node 1, the only claimant, names itself.
    let addrs = ["127.0.43.1", "127.0.43.2", "127.0.43.3"];
    let port = free_port(ip(addrs[0]));
    let _node1 = FakeVault::start(
        SocketAddr::new(ip(addrs[0]), port),
        Active,
        &format!("http://{}:{port}", addrs[0]),
    );
    let c = Cluster {
        nodes: Vec::new(),
        addrs: addrs.iter().map(|a| a.to_string()).collect(),
        port,
    };
    let s = with_admin("v4.yaml", &c.zone("v4.test"));
    assert_eq!(answers(&s, "active.v4.test."), ["127.0.43.1"]);
    wait_why(
        s.admin(),
        "active.v4.test",
        "127.0.43.1 leads (self-report, named by 1 of 1 voting)",
    );
}
