package examples_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRedisCluster runs the demo on a Redis Cluster (-store redis
// -redis-cluster), the one DPOPKIT_REDIS_CLUSTER_URL names (CI starts it,
// sets the variable and refuses skips): it answers /readyz, issues a
// client_credentials token, and its API accepts the token once and refuses
// the replayed proof; so does a demo whose writes wait for a replica
// (-redis-replicas 1: every master of the CI cluster has one).
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	clusterURL := os.Getenv("DPOPKIT_REDIS_CLUSTER_URL")
	if clusterURL == "" {
		t.Skip("DPOPKIT_REDIS_CLUSTER_URL is not set (CI sets it; see the README)")
	}
	for _, replicas := range []string{"0", "1"} {
		t.Run("replicas="+replicas, func(t *testing.T) {
			clusterDemo(t, clusterURL, "-redis-replicas", replicas)
		})
	}
}

// clusterDemo runs the checks of TestRedisCluster on a demo started with
// the extra flags.
func clusterDemo(t *testing.T, clusterURL string, extra ...string) {
	d := startDemo(t, nil, append([]string{"-store", "redis", "-redis-cluster", "-redis-url", clusterURL, "-store-namespace", "dpopkit_examples_cluster"}, extra...)...)
	wantStatus(t, curlGet(t, d.url+"/readyz", ""), http.StatusOK, "GET /readyz on a Redis Cluster")
	key := filepath.Join(t.TempDir(), "k.pem")
	tok := accessToken(t, d, key, "demo:demo-secret", "grant_type", "client_credentials")
	api := d.url + "/api/hello"
	p := proof(t, key, "-method", "GET", "-url", api, "-token", tok)
	wantHello(t, curlGet(t, api, "", "Authorization", "DPoP "+tok, "DPoP", p), "demo", "demo", "read write", proof(t, key, "-jkt"))
	r := curlGet(t, api, "", "Authorization", "DPoP "+tok, "DPoP", p)
	wantStatus(t, r, http.StatusUnauthorized, "the proof replayed")
	if www := r.header.Get("WWW-Authenticate"); !strings.Contains(www, "invalid_dpop_proof") {
		t.Fatalf("the proof replayed: WWW-Authenticate %q, want invalid_dpop_proof", www)
	}
}
