package e2e

import (
	"fmt"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
)

func TestStaticGoBinarySeesTheTarget(t *testing.T) {
	env := envtest.New(t)
	probe := built(t, "probe")
	r := execIn(t, env, []string{"--no-incoming"}, probe,
		"env=API_TOKEN", "hostname", "read="+localenv.AppConfigPath, "stat="+localenv.AppConfigPath,
		"resolve=redis", "resolve="+localenv.HostsOnlyName,
		fmt.Sprintf("redis=%s:%d", localenv.RedisDNSName, localenv.RedisPort))
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "stdout", r.Stdout,
		"env API_TOKEN="+localenv.AppAPIToken,
		"hostname "+env.App.Hostname,
		`"environment": "remote"`,
		"resolve redis: "+localenv.RedisIP.String(),
		"resolve "+localenv.HostsOnlyName+": "+localenv.HostsOnlyIP.String(),
		"+PONG (remote "+localenv.RedisIP.String()+":6379)",
	)
}
