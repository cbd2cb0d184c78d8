package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/remocal/remocal/protocol/config"
)

func newVerifyConfigCmd() *cobra.Command {
	var printSchema bool
	cmd := &cobra.Command{
		Use:   "verify-config [FILE]",
		Short: "Check a configuration file and report every problem in it",
		Long: `verify-config checks a remocal configuration file: its JSON syntax (comments
and trailing commas are allowed), that every key is known and every value has
the right type, and the values themselves (target syntax, ports, address
ranges, durations, HTTP filter patterns).

Without FILE it checks the nearest .remocal/config.json, looking in the current
directory and then in each parent directory.

It prints "FILE: ok", or one line per problem:
  FILE:LINE:COLUMN: $.json.path: what is wrong and what is expected
and exits with status 1. Status 2 means no file could be checked.

--schema prints the JSON Schema of the file instead. Editors use it for
completion and validation:
  remocal verify-config --schema > .remocal/schema.json
and in .remocal/config.json:
  { "$schema": "./schema.json" }`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if printSchema {
				_, err := out.Write(config.Schema())
				return err
			}
			var file string
			if len(args) == 1 {
				file = args[0]
			} else {
				found, err := findConfig()
				if err != nil {
					return exitError{code: 2, err: err}
				}
				file = found
			}
			_, err := config.Load(file)
			var cerr *config.Error
			switch {
			case err == nil:
				fmt.Fprintf(out, "%s: ok\n", file)
				return nil
			case errors.As(err, &cerr):
				fmt.Fprintln(out, cerr.Error())
				n := len(cerr.Problems)
				noun := "problems"
				if n == 1 {
					noun = "problem"
				}
				return exitError{code: 1, err: fmt.Errorf("%s is not a valid configuration (%d %s)", file, n, noun)}
			default:
				return exitError{code: 2, err: err}
			}
		},
	}
	cmd.Flags().BoolVar(&printSchema, "schema", false, "print the configuration file's JSON Schema and exit")
	return cmd
}

// findConfig finds the nearest configuration file from the working
// directory, named relative to it when that is shorter, as people type it.
func findConfig() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	found, err := config.Find(wd)
	if errors.Is(err, config.ErrNotFound) {
		name := filepath.Join(config.Dir, config.File)
		return "", fmt.Errorf("%w\nCreate one in your project's top directory:\n  mkdir -p %s && echo '{}' > %s\nor name the file to check: remocal verify-config FILE", err, config.Dir, name)
	}
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(wd, found); err == nil && len(rel) < len(found) && !strings.HasPrefix(rel, "../../../") {
		return rel, nil
	}
	return found, nil
}
