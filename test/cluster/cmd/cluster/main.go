// Command cluster drives the test cluster harness (package
// github.com/remocal/remocal/test/cluster); the Makefile runs it:
//
//	go run ./test/cluster/cmd/cluster up       # make cluster-up
//	go run ./test/cluster/cmd/cluster down     # make cluster-down
//	go run ./test/cluster/cmd/cluster images   # make images
//	go run ./test/cluster/cmd/cluster status
//	go run ./test/cluster/cmd/cluster build    # only build (or find cached) the binaries
//	go run ./test/cluster/cmd/cluster helm ARGS # the harness's helm
//	go run ./test/cluster/cmd/cluster manifests # the chart as plain manifests (make manifests)
//
// Progress goes to standard error; `up` ends by printing
// `export KUBECONFIG=...` on standard output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/remocal/remocal/test/cluster"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	var err error
	switch os.Args[1] {
	case "up":
		var c *cluster.Cluster
		c, err = cluster.Up(ctx, logf)
		if err == nil {
			fmt.Fprintf(os.Stderr, "cluster %s up: node %s (%s), kubectl %s, logs in %s\n",
				cluster.KubernetesVersion, c.NodeName, c.NodeIP, c.KubectlPath, c.LogDir)
			fmt.Printf("export KUBECONFIG=%s\n", c.Kubeconfig)
		}
	case "build":
		err = cluster.Build(ctx, logf)
	case "down":
		err = cluster.Down(context.WithoutCancel(ctx), logf)
	case "status":
		if c, aerr := cluster.Attach(ctx); aerr != nil {
			err = aerr
		} else {
			fmt.Printf("running: node %s (%s)\nexport KUBECONFIG=%s\n", c.NodeName, c.NodeIP, c.Kubeconfig)
		}
	case "images":
		fs := flag.NewFlagSet("images", flag.ExitOnError)
		var o cluster.ImageOptions
		fs.StringVar(&o.OutDir, "out", "", "directory for the OCI archives (default bin/images)")
		fs.StringVar(&o.Tag, "tag", "dev", "tag of the example images")
		fs.StringVar(&o.Version, "version", "dev", "version stamped into the remocal binary, and the agent and operator images' tag")
		only := fs.String("only", "", "comma-separated images to build (agent,operator,inventory,pyservice,postgres,grpcecho,redis,nats,queueapp); default all")
		_ = fs.Parse(os.Args[2:])
		if *only != "" {
			o.Only = strings.Split(*only, ",")
		}
		var imgs []cluster.BuiltImage
		imgs, err = cluster.BuildImages(ctx, o, logf)
		for _, i := range imgs {
			if i.Path != "" {
				fmt.Printf("%s\t%s\n", i.Name, i.Path)
			} else {
				fmt.Printf("%s\tskipped: %s\n", i.Name, i.Note)
			}
		}
	case "helm":
		err = runHelm(ctx, os.Args[2:])
	case "manifests":
		var b []byte
		if b, err = cluster.Manifests(ctx); err == nil {
			_, err = os.Stdout.Write(b)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// runHelm runs the harness's helm (built on first use) with args, on the
// running cluster as cluster-admin if there is one; `helm template` and
// `helm lint` need none.
func runHelm(ctx context.Context, args []string) error {
	var cmd *exec.Cmd
	if c, err := cluster.Attach(ctx); err == nil {
		if cmd, err = c.HelmCmd(ctx, args...); err != nil {
			return err
		}
	} else {
		bin, err := cluster.Helm(ctx)
		if err != nil {
			return err
		}
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode()) // helm said why on standard error
		}
		return err
	}
	return nil
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go run ./test/cluster/cmd/cluster up|down|status|build|images [-out DIR] [-tag TAG] [-version V] [-only a,b]|helm ARGS...|manifests")
	os.Exit(2)
}
