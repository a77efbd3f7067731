package redisstore

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A private Redis Cluster for tests that kill its nodes: six redis-server
// processes on loopback (three masters, each with a replica), made with
// redis-cli --cluster create, stopped when the test ends. The cluster CI
// keeps for the conformance suite (DPOPKIT_REDIS_CLUSTER_URL) is never
// touched: a failover test needs nodes of its own to kill.

// clusterNodeTimeout is the private cluster's cluster-node-timeout: a dead
// master's replica takes over about two of these after the death.
const clusterNodeTimeout = 1000 * time.Millisecond

// procCluster is a private cluster.
type procCluster struct {
	t     *testing.T
	nodes []*procNode
}

// procNode is one redis-server process of a procCluster.
type procNode struct {
	addr string
	args []string
	cmd  *exec.Cmd
}

// startProcCluster starts a private cluster of six nodes and waits until it
// serves every slot. redis-server and redis-cli must be installed (Debian
// package redis-server); without them the test fails, since CI runs it.
func startProcCluster(t *testing.T) *procCluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (Debian: apt-get install redis-server): %v", bin, err)
		}
	}
	pc := &procCluster{t: t}
	t.Cleanup(pc.stop)
	dir := t.TempDir()
	for i, port := range freeClusterPorts(t, 6) {
		d := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		n := &procNode{addr: fmt.Sprintf("127.0.0.1:%d", port), args: []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", d,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())),
			// A replica that lost its master for a while may still take
			// over: the test of what an unacknowledged write loses needs it.
			"--cluster-replica-validity-factor", "0",
			"--cluster-allow-replica-migration", "no",
			"--save", "", "--appendonly", "no", "--logfile", filepath.Join(d, "log"),
		}}
		pc.nodes = append(pc.nodes, n)
		pc.start(n)
	}
	args := []string{"--cluster", "create"}
	for _, n := range pc.nodes {
		args = append(args, n.addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	pc.waitFor("every slot served", func(ns []clusterNode) bool {
		return len(masters(ns)) == 3 && len(ns) == 6
	})
	ns, _ := pc.view()
	for _, m := range masters(ns) {
		pc.waitReplicated(m.addr)
	}
	return pc
}

// waitReplicated waits until the master at addr has a replica in sync
// (state=online in INFO replication).
func (pc *procCluster) waitReplicated(addr string) {
	pc.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, _ := c.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "state=online") {
			return
		}
		if time.Now().After(deadline) {
			pc.t.Fatalf("master %s has no replica in sync within 30s:\n%s", addr, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeClusterPorts returns n ports p on loopback with p and its cluster
// bus port p+10000 both free.
func freeClusterPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for try := 0; len(ports) < n; try++ {
		if try > 1000 {
			t.Fatal("no free ports for a private Redis Cluster")
		}
		p := 20000 + rand.IntN(25000)
		// Neither p nor its bus port may be one of the ports already
		// taken, or their bus ports.
		taken := false
		for _, q := range ports {
			taken = taken || p == q || p == q+10000 || p+10000 == q
		}
		if !taken && portFree(p) && portFree(p+10000) {
			ports = append(ports, p)
		}
	}
	return ports
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// start runs n's redis-server and waits until it answers.
func (pc *procCluster) start(n *procNode) {
	pc.t.Helper()
	n.cmd = exec.Command("redis-server", n.args...)
	if err := n.cmd.Start(); err != nil {
		pc.t.Fatalf("redis-server %s: %v", n.addr, err)
	}
	c := redis.NewClient(&redis.Options{Addr: n.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			pc.t.Fatalf("redis-server %s did not answer within 10s", n.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends n's process with SIGKILL, as a crash would, and waits for it.
func (pc *procCluster) kill(n *procNode) {
	pc.t.Helper()
	if err := n.cmd.Process.Kill(); err != nil {
		pc.t.Fatalf("kill %s: %v", n.addr, err)
	}
	n.cmd.Wait()
	n.cmd = nil
}

// signal sends sig (SIGSTOP, SIGCONT) to n's process.
func (pc *procCluster) signal(n *procNode, sig syscall.Signal) {
	pc.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		pc.t.Fatalf("signal %v to %s: %v", sig, n.addr, err)
	}
}

func (pc *procCluster) stop() {
	for _, n := range pc.nodes {
		if n.cmd != nil {
			n.cmd.Process.Signal(syscall.SIGCONT)
			n.cmd.Process.Kill()
			n.cmd.Wait()
		}
	}
}

// node returns the node at addr.
func (pc *procCluster) node(addr string) *procNode {
	for _, n := range pc.nodes {
		if n.addr == addr {
			return n
		}
	}
	pc.t.Fatalf("no node at %s", addr)
	return nil
}

// clusterNode is one line of CLUSTER NODES: a node as another node sees it.
type clusterNode struct {
	id, addr, master string
	isMaster, failed bool
	slots            int
}

// view reads CLUSTER NODES from the first live node, and reports whether
// every live node's cluster_state is ok. Nodes flagged as failing are
// listed too.
func (pc *procCluster) view() ([]clusterNode, bool) {
	var nodes []clusterNode
	ok := true
	for _, n := range pc.nodes {
		if n.cmd == nil {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: n.addr, MaxRetries: -1, ReadTimeout: time.Second})
		text, err := c.ClusterNodes(context.Background()).Result()
		info, ierr := c.ClusterInfo(context.Background()).Result()
		c.Close()
		if err != nil || ierr != nil || !strings.Contains(info, "cluster_state:ok") {
			ok = false
			continue
		}
		if nodes == nil {
			nodes = parseClusterNodes(text)
		}
	}
	return nodes, ok && nodes != nil
}

// parseClusterNodes reads the text of CLUSTER NODES.
func parseClusterNodes(text string) []clusterNode {
	var out []clusterNode
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		n := clusterNode{id: f[0], addr: strings.SplitN(f[1], "@", 2)[0], master: f[3],
			isMaster: strings.Contains(f[2], "master"),
			failed:   strings.Contains(f[2], "fail") && !strings.Contains(f[2], "fail?")}
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			switch {
			case strings.HasPrefix(r, "["): // a slot being migrated
			case !ok && err1 == nil:
				n.slots++
			case ok && err1 == nil && err2 == nil:
				n.slots += b - a + 1
			}
		}
		out = append(out, n)
	}
	return out
}

// masters are the live masters serving slots in ns.
func masters(ns []clusterNode) []clusterNode {
	var out []clusterNode
	for _, n := range ns {
		if n.isMaster && !n.failed && n.slots > 0 {
			out = append(out, n)
		}
	}
	return out
}

// replicaOf returns the address of the replica of the master at addr.
func (pc *procCluster) replicaOf(addr string) string {
	pc.t.Helper()
	ns, _ := pc.view()
	id := ""
	for _, n := range ns {
		if n.addr == addr {
			id = n.id
		}
	}
	for _, n := range ns {
		if id != "" && n.master == id && !n.isMaster {
			return n.addr
		}
	}
	pc.t.Fatalf("master %s has no replica in %v", addr, ns)
	return ""
}

// waitFor polls the cluster's view, while its state is ok, until cond
// holds; it fails the test after 30 s.
func (pc *procCluster) waitFor(what string, cond func([]clusterNode) bool) {
	pc.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ns, ok := pc.view()
		if ok && cond(ns) {
			return
		}
		if time.Now().After(deadline) {
			pc.t.Fatalf("cluster: %s: not within 30s; last view %+v", what, ns)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPromoted waits until the node at addr is a master serving slots, in
// a cluster whose state is ok.
func (pc *procCluster) waitPromoted(addr string) {
	pc.t.Helper()
	pc.waitFor(addr+" promoted", func(ns []clusterNode) bool {
		for _, n := range masters(ns) {
			if n.addr == addr {
				return true
			}
		}
		return false
	})
}

// client is a Cluster client of pc with short timeouts.
func (pc *procCluster) client() *redis.ClusterClient {
	pc.t.Helper()
	var addrs []string
	for _, n := range pc.nodes {
		addrs = append(addrs, n.addr)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs,
		ContextTimeoutEnabled: true, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	pc.t.Cleanup(func() { c.Close() })
	return c
}
