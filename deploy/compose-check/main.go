// Command compose-check validates a Compose file the way `docker compose` does.
//
// It loads the file with compose-go, the library docker compose is built on: the
// Compose Specification JSON schema, variable interpolation, normalization and the
// consistency checks (unknown services in depends_on, undefined volumes, networks
// and so on). On success it prints the resolved project as JSON so that tests can
// inspect the model docker compose would run; on failure it exits non-zero.
//
// Usage: compose-check [-profiles p1,p2|*] [-env-file FILE] [compose.yml]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	profiles := flag.String("profiles", "", "comma-separated profiles to enable, * for all")
	envFile := flag.String("env-file", "", "interpolate with this env file (default: none)")
	flag.Parse()

	file := "docker-compose.yml"
	if flag.NArg() > 0 {
		file = flag.Arg(0)
	}
	if err := run(file, *profiles, *envFile); err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: %s: %v\n", file, err)
		os.Exit(1)
	}
}

func run(file, profiles, envFile string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	fns := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithName("msa-board"),
		// Only the file itself and an explicit env file count: a developer's own
		// .env or shell must not make the check pass or fail.
		cli.WithDiscardEnvFile,
	}
	if envFile != "" {
		fns = append(fns, cli.WithEnvFiles(envFile), cli.WithDotEnv)
	}
	if profiles != "" {
		fns = append(fns, cli.WithProfiles(strings.Split(profiles, ",")))
	}
	opts, err := cli.NewProjectOptions([]string{abs}, fns...)
	if err != nil {
		return err
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		return err
	}
	out, err := project.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(out, '\n'))
	return err
}
