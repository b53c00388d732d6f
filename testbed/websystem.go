package testbed

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/dydisnix/dydisnix/testbed/services"
)

// The web system: the seeds' realistic example (php-sbexampleapps, see
// docs/example-services.md) in small: a shared users database, one
// database per application, the applications (the webapp program, with
// uploaded files in their state directory) and a portal. Every machine
// runs a MariaDB server of its own (ContainerMySQL).

// webApp is one application of the web system.
type webApp struct {
	name, appName string
	port          int
	db, table     string // its records ("" for the portal)
	files         bool   // it keeps uploaded files (stateful)
}

var webApps = []webApp{
	{"users", "Users", 7101, "usersdb", "users", false},
	{"cms", "CMS", 7102, "cmsdb", "records", true},
	{"homework", "Homework", 7103, "homeworkdb", "records", true},
	{"portal", "Portal", 7100, "", "", false},
}

// WebSystemServiceNames lists the web system's services: the databases,
// then the applications.
func WebSystemServiceNames() []string {
	out := append([]string{}, services.WebSystemDatabases...)
	for _, a := range webApps {
		out = append(out, a.name)
	}
	return out
}

// WebSystemModel returns the web system as a services model (JSON form):
// the mysql-database services' pkg are the component directories
// services.WriteWebSystemComponents wrote into componentsDir, the
// applications' the webapp program in binDir/examples. Every application
// dependsOn its database and the users database; the portal connectsTo
// every application (no activation order needed).
func WebSystemModel(binDir, componentsDir string) map[string]any {
	m := map[string]any{}
	for _, db := range services.WebSystemDatabases {
		m[db] = map[string]any{
			"name": db, "type": ContainerMySQL, "pkg": filepath.Join(componentsDir, db),
			"stateful": true, "deployState": true,
		}
	}
	var portalPeers []string
	for _, a := range webApps {
		svc := map[string]any{
			"name": a.name, "type": "process", "pkg": filepath.Join(binDir, "examples", "webapp"),
			"appName": a.appName, "port": a.port, "usersDb": "usersdb",
			"healthCheck": fmt.Sprintf("http://127.0.0.1:%d/healthz", a.port),
		}
		deps := []string{"usersdb"}
		if a.db != "" {
			svc["db"], svc["table"] = a.db, a.table
			if a.db != "usersdb" {
				deps = append(deps, a.db)
			}
			portalPeers = append(portalPeers, a.name)
		} else {
			sort.Strings(portalPeers)
			svc["connectsTo"] = portalPeers
		}
		sort.Strings(deps) // as a Nix attribute set lists them
		svc["dependsOn"] = deps
		if a.files {
			svc["stateful"], svc["deployState"] = true, true
		}
		m[a.name] = svc
	}
	return m
}
