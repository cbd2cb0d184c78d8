package cluster

import (
	"context"
	"fmt"
	"os"
)

// Images of the queue-splitting tests (issue 16, docs/queues.md): the two
// brokers from this machine's Debian packages, and test/queueapp.
const (
	RedisImageRepo    = "remocal.local/test/redis"
	NATSImageRepo     = "remocal.local/test/nats"
	QueueAppImageRepo = "remocal.local/test/queueapp"
)

// QueueImages are the BuildImages names (ImageOptions.Only) of the images
// DeployRedis, DeployNATS and DeployQueueApp use.
var QueueImages = []string{"redis", "nats", "queueapp"}

// brokerUID runs both brokers: neither needs root, and the data directory
// is an emptyDir, which any user may write.
const brokerUID = "999"

const (
	// Debian's redis-server is a symbolic link to redis-check-rdb: one
	// program that acts by the name it is started as. The image holds the
	// program under the server's name.
	redisServer    = "/usr/bin/redis-server"
	natsServerPath = "/usr/sbin/nats-server"
)

// brokerUser is the /etc/passwd and /etc/group naming brokerUID: Redis
// looks its user up for nothing, but a uid without a name confuses tools.
func brokerUser(name string) []ImageFile {
	return []ImageFile{
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" + name + ":x:" + brokerUID + ":" + brokerUID + "::/data:/sbin/nologin\n"), Mode: 0o644},
		{Path: "/etc/group", Data: []byte("root:x:0:\n" + name + ":x:" + brokerUID + ":\n"), Mode: 0o644},
	}
}

// redisImage is Debian's Redis server and the shared libraries it loads
// (ldd), nothing else: no configuration file (the defaults, changed by
// the arguments DeployRedis gives), no redis-cli (probes are TCP ones).
// A note instead of an image says why it cannot be built here.
func redisImage(ctx context.Context, name string) (Image, string, error) {
	if _, err := os.Stat(redisServer); err != nil {
		return Image{}, redisServer + " is missing (apt-get install redis-server)", nil
	}
	libs := map[string]bool{}
	if err := addLibraries(ctx, libs, redisServer); err != nil {
		return Image{}, "", err
	}
	lfiles, err := libraryFiles(libs)
	if err != nil {
		return Image{}, "", err
	}
	files := append(brokerUser("redis"), ImageFile{Path: redisServer, Source: redisServer, Mode: 0o755})
	return Image{
		Name:       name,
		Entrypoint: []string{redisServer},
		// Listen on every address (the pod's), keep the append-only file
		// in /data (an emptyDir: it survives a container restart, as the
		// brokers' exactly-once argument assumes), no snapshots.
		Cmd:        []string{"--bind", "0.0.0.0", "--protected-mode", "no", "--port", "6379", "--dir", "/data", "--appendonly", "yes", "--save", ""},
		Env:        []string{"PATH=/usr/bin"},
		User:       brokerUID + ":" + brokerUID,
		WorkingDir: "/data",
		Files:      append(files, lfiles...),
	}, "", nil
}

// natsImage is Debian's nats-server (a Go program, linked against libc
// only) and its libraries, with JetStream on and stored in /data.
func natsImage(ctx context.Context, name string) (Image, string, error) {
	if _, err := os.Stat(natsServerPath); err != nil {
		return Image{}, natsServerPath + " is missing (apt-get install nats-server)", nil
	}
	libs := map[string]bool{}
	if err := addLibraries(ctx, libs, natsServerPath); err != nil {
		return Image{}, "", err
	}
	lfiles, err := libraryFiles(libs)
	if err != nil {
		return Image{}, "", err
	}
	files := append(brokerUser("nats"), ImageFile{Path: natsServerPath, Source: natsServerPath, Mode: 0o755})
	return Image{
		Name:       name,
		Entrypoint: []string{natsServerPath},
		// Clients on 4222; the monitoring port 8222 serves /healthz,
		// the readiness probe (JetStream included).
		Cmd:        []string{"-js", "-sd", "/data", "-p", "4222", "-m", "8222"},
		Env:        []string{"PATH=/usr/sbin"},
		User:       brokerUID + ":" + brokerUID,
		WorkingDir: "/data",
		Files:      append(files, lfiles...),
	}, "", nil
}

// writeQueueImages writes the images QueueImages names that want selects;
// queueappBin is test/queueapp built static.
func writeQueueImages(ctx context.Context, write func(string, Image) error, want func(string) bool, skip func(name, note string), queueappBin, tag string) error {
	if want("queueapp") {
		if err := write("queueapp.tar", Image{
			Name:       QueueAppImageRepo + ":" + tag,
			Entrypoint: []string{"/queueapp"},
			Env:        []string{"PATH=/"},
			User:       "65534:65534",
			Files:      []ImageFile{{Path: "/queueapp", Source: queueappBin, Mode: 0o755}},
		}); err != nil {
			return err
		}
	}
	for _, b := range []struct {
		key, file, repo string
		build           func(context.Context, string) (Image, string, error)
	}{{"redis", "redis.tar", RedisImageRepo, redisImage}, {"nats", "nats.tar", NATSImageRepo, natsImage}} {
		if !want(b.key) {
			continue
		}
		name := b.repo + ":" + tag
		img, note, err := b.build(ctx, name)
		if err != nil {
			return fmt.Errorf("the %s image: %w", b.key, err)
		}
		if note != "" {
			skip(name, note)
			continue
		}
		if err := write(b.file, img); err != nil {
			return err
		}
	}
	return nil
}
