package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/remocal/remocal/test/queueapp/queuerecord"
)

// Broker is a broker (or a results Redis) DeployRedis or DeployNATS
// started: a Deployment of one pod and a Service of the same name.
type Broker struct {
	Kind      string // "redis" or "nats"
	Namespace string
	Name      string
	Port      int
}

// Addr is the broker's address for pods of the cluster (host:port).
func (b Broker) Addr() string {
	return fmt.Sprintf("%s.%s.svc.cluster.local:%d", b.Name, b.Namespace, b.Port)
}

// DeployRedis starts a Redis server (RedisImageRepo:tag, imported by
// BuildImages with QueueImages) as Deployment and Service name in ns and
// waits until it accepts connections. It goes with the namespace.
func (c *Cluster) DeployRedis(ctx context.Context, ns, name, tag string) (Broker, error) {
	b := Broker{Kind: "redis", Namespace: ns, Name: name, Port: 6379}
	probe := map[string]any{"tcpSocket": map[string]any{"port": 6379}, "periodSeconds": 1}
	return b, c.deployBroker(ctx, b, RedisImageRepo+":"+tag, probe, []int{6379})
}

// DeployNATS starts a NATS server with JetStream (NATSImageRepo:tag,
// stored in an emptyDir) as Deployment and Service name in ns and waits
// until JetStream is ready. It goes with the namespace.
func (c *Cluster) DeployNATS(ctx context.Context, ns, name, tag string) (Broker, error) {
	b := Broker{Kind: "nats", Namespace: ns, Name: name, Port: 4222}
	probe := map[string]any{"httpGet": map[string]any{"path": "/healthz?js-enabled-only=true", "port": 8222}, "periodSeconds": 1}
	return b, c.deployBroker(ctx, b, NATSImageRepo+":"+tag, probe, []int{4222, 8222})
}

func (c *Cluster) deployBroker(ctx context.Context, b Broker, image string, probe map[string]any, ports []int) error {
	labels := map[string]string{"app": b.Name, "remocal-test": b.Name}
	var cports, sports []map[string]any
	for _, p := range ports {
		cports = append(cports, map[string]any{"containerPort": p})
		sports = append(sports, map[string]any{"name": "p" + strconv.Itoa(p), "port": p, "targetPort": p})
	}
	pod := map[string]any{
		"terminationGracePeriodSeconds": 5,
		"containers": []map[string]any{{
			"name": b.Kind, "image": image, "imagePullPolicy": "Never",
			"ports": cports, "readinessProbe": probe,
			"volumeMounts": []map[string]any{{"name": "data", "mountPath": "/data"}},
		}},
		"volumes": []map[string]any{{"name": "data", "emptyDir": map[string]any{}}},
	}
	svc := object("v1", "Service", b.Name, map[string]any{"selector": labels, "ports": sports})
	if err := c.applyObjects(ctx, b.Namespace, deployment(b.Name, 1, labels, pod), svc); err != nil {
		return err
	}
	return c.Rollout(ctx, b.Namespace, "deployment/"+b.Name, 2*time.Minute)
}

// QueueApp is test/queueapp as a consumer Deployment or a producer Job.
type QueueApp struct {
	// Name of the Deployment or Job (and its pods' app label).
	Name string
	Tag  string // QueueAppImageRepo's tag
	// Produce makes a Job running `queueapp produce -create` once;
	// otherwise a Deployment of Replicas (default 1) consumers.
	Produce  bool
	Replicas int
	Broker   Broker
	// Results is the Redis the consumers record in (may be Broker).
	Results Broker
	// Who names the consumer in the records (default "deployed").
	Who string
	// Env are the queue variables, by the names queueapp reads by
	// default: ORDERS_STREAM, ORDERS_GROUP and (JetStream) ORDERS_SUBJECT.
	// The operator changes their values; a test may too.
	Env map[string]string
	// Args are more flags (-count, -start, -rate, -batch...).
	Args []string
}

// QueueAppContainer is the container's name in QueueApp's pods (a
// RemocalQueueConsumer's spec.workload.container).
const QueueAppContainer = "queueapp"

// Manifest is the app's Deployment or Job as JSON.
func (a QueueApp) Manifest(ns string) string {
	labels := map[string]string{"app": a.Name, "remocal-test": a.Name}
	env := []map[string]any{{"name": "BROKER", "value": a.Broker.Kind}, {"name": "BROKER_ADDR", "value": a.Broker.Addr()}}
	if a.Results.Name != "" {
		env = append(env, map[string]any{"name": "RESULTS_ADDR", "value": a.Results.Addr()})
	}
	who := a.Who
	if who == "" {
		who = "deployed"
	}
	env = append(env, map[string]any{"name": "WHO", "value": who})
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		env = append(env, map[string]any{"name": k, "value": a.Env[k]})
	}
	mode := []string{"consume"}
	if a.Produce {
		mode = []string{"produce", "-create"}
	}
	pod := map[string]any{
		"terminationGracePeriodSeconds": 10,
		"containers": []map[string]any{{
			"name": QueueAppContainer, "image": QueueAppImageRepo + ":" + a.Tag, "imagePullPolicy": "Never",
			"args": append(mode, a.Args...), "env": env,
		}},
	}
	var obj map[string]any
	if a.Produce {
		pod["restartPolicy"] = "Never"
		obj = object("batch/v1", "Job", a.Name, map[string]any{
			"backoffLimit": 0,
			"template":     map[string]any{"metadata": map[string]any{"labels": labels}, "spec": pod},
		})
	} else {
		obj = deployment(a.Name, max(a.Replicas, 1), labels, pod)
	}
	obj["metadata"].(map[string]any)["namespace"] = ns
	b, _ := json.Marshal(obj)
	return string(b)
}

// DeployQueueApp applies a's Deployment or Job in ns. A consumer is waited
// for until its pods run; a producer is not (WaitJob).
func (c *Cluster) DeployQueueApp(ctx context.Context, ns string, a QueueApp) error {
	if _, err := c.KubectlInput(ctx, a.Manifest(ns), "apply", "-f", "-"); err != nil {
		return err
	}
	if a.Produce {
		return nil
	}
	return c.Rollout(ctx, ns, "deployment/"+a.Name, 2*time.Minute)
}

// Rollout waits until a workload's rollout is complete.
func (c *Cluster) Rollout(ctx context.Context, ns, workload string, timeout time.Duration) error {
	if _, err := c.Kubectl(ctx, "-n", ns, "rollout", "status", workload, "--timeout="+timeout.String()); err != nil {
		desc, _ := c.Kubectl(ctx, "-n", ns, "describe", workload)
		return fmt.Errorf("%w\n%s", err, desc)
	}
	return nil
}

// WaitJob waits until the Job completed, or says why not (its pods' logs).
func (c *Cluster) WaitJob(ctx context.Context, ns, job string, timeout time.Duration) error {
	if _, err := c.Kubectl(ctx, "-n", ns, "wait", "job/"+job, "--for=condition=Complete", "--timeout="+timeout.String()); err != nil {
		logs, _ := c.Kubectl(ctx, "-n", ns, "logs", "job/"+job, "--tail=30")
		return fmt.Errorf("%w\nthe job's logs:\n%s", err, logs)
	}
	return nil
}

// QueueRecords reads what queueapp's consumers recorded in the results
// Redis, through a port forward to it on loopback (the test process
// never dials the cluster's addresses).
func (c *Cluster) QueueRecords(ctx context.Context, results Broker) ([]queuerecord.Record, error) {
	addr, stop, err := c.PortForward(ctx, results.Namespace, "svc/"+results.Name, results.Port)
	if err != nil {
		return nil, err
	}
	defer stop()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	defer rdb.Close()
	return queuerecord.Read(ctx, rdb)
}

func object(apiVersion, kind, name string, spec map[string]any) map[string]any {
	return map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}, "spec": spec}
}

func deployment(name string, replicas int, labels map[string]string, pod map[string]any) map[string]any {
	return object("apps/v1", "Deployment", name, map[string]any{
		"replicas": replicas,
		"selector": map[string]any{"matchLabels": labels},
		"template": map[string]any{"metadata": map[string]any{"labels": labels}, "spec": pod},
	})
}

// applyObjects applies objects in ns, as one List.
func (c *Cluster) applyObjects(ctx context.Context, ns string, objs ...map[string]any) error {
	b, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": objs})
	if err != nil {
		return err
	}
	_, err = c.KubectlInput(ctx, string(b), "-n", ns, "apply", "-f", "-")
	return err
}
