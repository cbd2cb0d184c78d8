package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// PostgresImageRepo is the Postgres example's image (examples/postgres).
const PostgresImageRepo = "remocal.local/examples/postgres"

// postgresUID runs the server: postgres refuses to run as root, and initdb
// looks its user up by uid, so the image's /etc/passwd names it.
const postgresUID = "999"

// Where Debian installs PostgreSQL 15. The image keeps these paths: the
// server finds its share and lib directories relative to its own binary.
const (
	pgBin   = "/usr/lib/postgresql/15/bin"
	pgLib   = "/usr/lib/postgresql/15/lib"
	pgShare = "/usr/share/postgresql/15"
)

// postgresImage is the Postgres example's image from this machine's
// Debian PostgreSQL 15: the server, initdb, pg_isready, dash for the entry
// point (and for initdb, which runs the server through popen), their
// shared libraries, and only the share files initdb and a running server
// read. A note instead of an image says why it cannot be built here.
func postgresImage(ctx context.Context, name, entrypoint string) (Image, string, error) {
	// pg_isready is the readiness probe: the port accepts connections a
	// moment before the server does.
	bins := []string{pgBin + "/postgres", pgBin + "/initdb", pgBin + "/pg_isready", "/bin/dash"}
	for _, p := range bins {
		if _, err := os.Stat(p); err != nil {
			return Image{}, fmt.Sprintf("%s is missing (apt-get install postgresql-15 dash)", p), nil
		}
	}
	if _, err := os.Stat(entrypoint); err != nil {
		return Image{}, "", fmt.Errorf("the Postgres image's entry point: %w", err)
	}
	files := []ImageFile{
		{Path: "/entrypoint.sh", Source: entrypoint, Mode: 0o755},
		{Path: "/bin/sh", Symlink: "dash"},
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\npostgres:x:" + postgresUID + ":" + postgresUID + ":PostgreSQL:/var/lib/postgresql:/bin/sh\n"), Mode: 0o644},
		{Path: "/etc/group", Data: []byte("root:x:0:\npostgres:x:" + postgresUID + ":\n"), Mode: 0o644},
		// The only zone it needs: the entry point's TZ, which initdb
		// writes into postgresql.conf.
		{Path: "/usr/share/zoneinfo/UTC", Source: "/usr/share/zoneinfo/UTC", Mode: 0o644},
	}
	for _, b := range bins {
		files = append(files, ImageFile{Path: b, Source: b, Mode: 0o755})
	}
	// initdb installs PL/pgSQL and the snowball text search dictionaries.
	mods := []string{pgLib + "/plpgsql.so", pgLib + "/dict_snowball.so"}
	for _, m := range mods {
		files = append(files, ImageFile{Path: m, Source: m, Mode: 0o755})
	}
	share := []string{
		// initdb's bootstrap catalog and scripts, and the samples it
		// turns into the configuration files.
		"postgres.bki", "information_schema.sql", "snowball_create.sql", "system_constraints.sql",
		"system_functions.sql", "system_views.sql", "sql_features.txt",
		"postgresql.conf.sample", "pg_hba.conf.sample", "pg_ident.conf.sample",
		"extension/plpgsql.control", "extension/plpgsql--1.0.sql",
		// The server loads the default time zone abbreviations at start.
		"timezonesets/Default",
	}
	// The snowball dictionaries read their stop words when first used
	// (to_tsvector('english', ...)).
	stops, err := filepath.Glob(pgShare + "/tsearch_data/*.stop")
	if err != nil {
		return Image{}, "", err
	}
	for _, s := range share {
		files = append(files, ImageFile{Path: pgShare + "/" + s, Source: pgShare + "/" + s, Mode: 0o644})
	}
	for _, s := range stops {
		files = append(files, ImageFile{Path: s, Source: s, Mode: 0o644})
	}
	libs := map[string]bool{}
	if err := addLibraries(ctx, libs, append(bins, mods...)...); err != nil {
		return Image{}, "", err
	}
	lfiles, err := libraryFiles(libs)
	if err != nil {
		return Image{}, "", err
	}
	return Image{
		Name:       name,
		Entrypoint: []string{"/entrypoint.sh"},
		Env:        []string{"PATH=" + pgBin + ":/bin", "TZ=UTC", "PGDATA=/var/lib/postgresql/data/pgdata"},
		User:       postgresUID + ":" + postgresUID,
		Files:      append(files, lfiles...),
	}, "", nil
}
