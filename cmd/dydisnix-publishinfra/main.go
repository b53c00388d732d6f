// Command dydisnix-publishinfra announces this machine over mDNS until it is
// stopped. See discovery/cli and docs/discovery.md.
package main

import (
	"os"

	"github.com/dydisnix/dydisnix/discovery/cli"
)

func main() {
	os.Exit(cli.Publish("dydisnix-publishinfra", os.Args[1:], os.Stdout, os.Stderr))
}
