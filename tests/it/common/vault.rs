//! A fake Vault node on 127.x: `/v1/sys/health` with Vault's status codes and body fields
//! (as of Vault 1.19), and `/v1/sys/leader` naming whichever node the test says leads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::AbortHandle;

use super::backend::{bind, runtime};

/// What a node is, as `/v1/sys/health` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Active,
    Standby,
    PerformanceStandby,
    /// A standby that lost its heartbeat to the active node (474, Vault 1.19).
    HaUnhealthy,
    DrSecondary,
    Sealed,
    Uninitialized,
    /// Removed from the Raft cluster (530).
    Removed,
}

impl NodeState {
    fn code(self) -> u16 {
        match self {
            NodeState::Active => 200,
            NodeState::Standby => 429,
            NodeState::PerformanceStandby => 473,
            NodeState::HaUnhealthy => 474,
            NodeState::DrSecondary => 472,
            NodeState::Sealed => 503,
            NodeState::Uninitialized => 501,
            NodeState::Removed => 530,
        }
    }
}

struct Node {
    state: NodeState,
    /// `leader_address` in `/v1/sys/leader`; empty while the node knows no leader.
    leader: String,
}

/// One fake Vault node, listening until dropped.
pub struct FakeVault {
    node: Arc<Mutex<Node>>,
    task: AbortHandle,
}

impl FakeVault {
    pub fn start(addr: SocketAddr, state: NodeState, leader: &str) -> Self {
        let listener = bind(addr);
        let node = Arc::new(Mutex::new(Node {
            state,
            leader: leader.to_string(),
        }));
        let shared = node.clone();
        let task = runtime().spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(conn, shared.clone()));
            }
        });
        FakeVault {
            node,
            task: task.abort_handle(),
        }
    }

    pub fn set(&self, state: NodeState, leader: &str) {
        let mut node = self.node.lock().unwrap();
        node.state = state;
        node.leader = leader.to_string();
    }
}

impl Drop for FakeVault {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: tokio::net::TcpStream, node: Arc<Mutex<Node>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/");
    let (state, leader) = {
        let n = node.lock().unwrap();
        (n.state, n.leader.clone())
    };
    let (code, body) = if path.starts_with("/v1/sys/health") {
        (state.code(), health_body(state))
    } else if path.starts_with("/v1/sys/leader") {
        if matches!(state, NodeState::Sealed | NodeState::Uninitialized) {
            (503, r#"{"errors":["Vault is sealed"]}"#.to_string())
        } else {
            let me = stream
                .local_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            (
                200,
                format!(
                    r#"{{"ha_enabled":true,"is_self":{},"active_time":"2026-12-01T10:00:00Z","leader_address":"{leader}","leader_cluster_address":"","performance_standby":false,"raft_committed_index":1042,"raft_applied_index":1042}}"#,
                    state == NodeState::Active && leader.contains(&me)
                ),
            )
        }
    } else {
        (404, r#"{"errors":[]}"#.to_string())
    };
    let reply = format!(
        "HTTP/1.1 {code} Vault\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn health_body(state: NodeState) -> String {
    let initialized = state != NodeState::Uninitialized;
    let sealed = matches!(state, NodeState::Sealed | NodeState::Uninitialized);
    let standby = matches!(
        state,
        NodeState::Standby | NodeState::PerformanceStandby | NodeState::HaUnhealthy
    );
    let dr = if state == NodeState::DrSecondary {
        "secondary"
    } else {
        "disabled"
    };
    format!(
        r#"{{"initialized":{initialized},"sealed":{sealed},"standby":{standby},"performance_standby":{},"replication_performance_mode":"disabled","replication_dr_mode":"{dr}","server_time_utc":1796140800,"version":"1.19.0","enterprise":false,"cluster_name":"vault-cluster-kemp","cluster_id":"5f1a2b3c","echo_duration_ms":0,"clock_skew_ms":0,"ha_connection_healthy":{},"removed_from_cluster":{}}}"#,
        state == NodeState::PerformanceStandby,
        state != NodeState::HaUnhealthy,
        state == NodeState::Removed
    )
}
