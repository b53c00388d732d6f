package augment

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

const infraJSON = `{
  "test1": {"properties": {"hostname": "test1", "zone": "eu", "mem": "2048", "tags": ["ssd", "fast"]},
            "containers": {"mysql-database": {"mysqlPort": 3306}}, "system": "x86_64-linux"},
  "test2": {"properties": {"hostname": "test2", "zone": "us", "mem": 1024, "labels": {"a": 1, "b": {"c": 2}}}},
  "db3":   {"properties": {"hostname": "db3"}, "containers": {"mysql-database": {}, "process": {}}}
}`

func testInfra(t *testing.T) model.Infrastructure {
	t.Helper()
	v, err := model.DecodeValue([]byte(infraJSON), model.FormatJSON, "infra.json")
	if err != nil {
		t.Fatal(err)
	}
	inf, err := model.InfrastructureFromValue(v, "infra.json")
	if err != nil {
		t.Fatal(err)
	}
	return inf
}

// fakeEnv and fakeFiles are the injected environment of Load.
func testOptions() Options {
	env := map[string]string{"DB_PASSWORD": "hunter2", "MEM": " 4096 ", "FLAG": "true", "OBJ": `{"k": [1, 2]}`, "BAD": "not-a-number-s3cret"}
	files := map[string]string{"/etc/aug/rules.yaml": "", "/etc/aug/pw.txt": "s3cret-file\n", "/abs/key": "KEY\r\n"}
	return Options{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		ReadFile: func(f string) ([]byte, error) {
			if c, ok := files[f]; ok {
				return []byte(c), nil
			}
			return nil, &os.PathError{Op: "open", Path: f, Err: os.ErrNotExist}
		},
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		rules string
		want  map[string]string // target → JSON of the augmented target (only those listed are checked)
	}{
		{
			name:  "set on every target",
			rules: `rules: [{set: {properties: {augment: augment}}}]`,
			want: map[string]string{
				"db3": `{"containers":{"mysql-database":{},"process":{}},"properties":{"augment":"augment","hostname":"db3"}}`,
			},
		},
		{
			name: "match by name glob and exclude",
			rules: `rules:
  - match: {targets: ["test*", "db?"], exclude: test2}
    set: {properties: {x: 1}}`,
			want: map[string]string{
				"test2": `{"properties":{"hostname":"test2","labels":{"a":1,"b":{"c":2}},"mem":1024,"zone":"us"}}`,
				"db3":   `{"containers":{"mysql-database":{},"process":{}},"properties":{"hostname":"db3","x":1}}`,
			},
		},
		{
			name: "match by containers (all required) and set container properties from secrets",
			rules: `rules:
  - match: {containers: [mysql-database, process]}
    set:
      containers:
        mysql-database: {mysqlPassword: {$file: pw.txt}, mysqlUser: root}
        extra: {created: true}`,
			want: map[string]string{
				"db3":   `{"containers":{"extra":{"created":true},"mysql-database":{"mysqlPassword":"s3cret-file","mysqlUser":"root"},"process":{}},"properties":{"hostname":"db3"}}`,
				"test1": `{"containers":{"mysql-database":{"mysqlPort":3306}},"properties":{"hostname":"test1","mem":"2048","tags":["ssd","fast"],"zone":"eu"},"system":"x86_64-linux"}`,
			},
		},
		{
			name: "property conditions: equality across string and number, in, glob, contains, exists, not",
			rules: `rules:
  - match: {properties: {mem: 2048}}
    set: {properties: {m1: true}}
  - match: {properties: {zone: {in: [eu, asia]}}}
    set: {properties: {m2: true}}
  - match: {properties: {hostname: {glob: "test?"}}}
    set: {properties: {m3: true}}
  - match: {properties: {tags: {contains: ssd}}}
    set: {properties: {m4: true}}
  - match: {properties: {zone: {exists: false}}}
    set: {properties: {m5: true}}
  - match: {properties: {zone: {not: eu}}}
    set: {properties: {m6: true}}`,
			want: map[string]string{
				"test1": `{"containers":{"mysql-database":{"mysqlPort":3306}},"properties":{"hostname":"test1","m1":true,"m2":true,"m3":true,"m4":true,"mem":"2048","tags":["ssd","fast"],"zone":"eu"},"system":"x86_64-linux"}`,
				"test2": `{"properties":{"hostname":"test2","labels":{"a":1,"b":{"c":2}},"m3":true,"m6":true,"mem":1024,"zone":"us"}}`,
				"db3":   `{"containers":{"mysql-database":{},"process":{}},"properties":{"hostname":"db3","m5":true,"m6":true}}`,
			},
		},
		{
			name: "merge is recursive, set replaces, remove runs first; later rules see earlier results",
			rules: `rules:
  - match: {target: test2}
    merge: {properties: {labels: {b: {d: 3}, e: 4}}}
  - match: {properties: {labels: {exists: true}}}
    remove: {properties: [zone]}
    set: {properties: {mem: {$env: MEM, $as: int}}, attributes: {targetProperty: hostname}}`,
			want: map[string]string{
				"test2": `{"properties":{"hostname":"test2","labels":{"a":1,"b":{"c":2,"d":3},"e":4},"mem":4096},"targetProperty":"hostname"}`,
			},
		},
		{
			name: "sources: env with $as, default, literal escape, absolute file",
			rules: `rules:
  - match: {target: db3}
    set:
      properties:
        pw: {$env: DB_PASSWORD}
        flag: {$env: FLAG, $as: bool}
        obj: {$env: OBJ, $as: json}
        missing: {$env: NOT_SET, $default: [1]}
        lit: {$value: {$env: not-a-source}}
        key: {$file: /abs/key}
        nested: {a: [{$env: DB_PASSWORD}]}`,
			want: map[string]string{
				"db3": `{"containers":{"mysql-database":{},"process":{}},"properties":{"flag":true,"hostname":"db3","key":"KEY","lit":{"$env":"not-a-source"},"missing":[1],"nested":{"a":["hunter2"]},"obj":{"k":[1,2]},"pw":"hunter2"}}`,
			},
		},
		{
			name: "remove containers, container properties and attributes",
			rules: `{"rules": [{"match": {"target": "test1"}, "remove": {"containers": "mysql-database", "attributes": ["system"]}},
                     {"match": {"target": "db3"}, "remove": {"containerProperties": {"mysql-database": ["x"]}, "containers": ["process"]}}]}`,
			want: map[string]string{
				"test1": `{"containers":{},"properties":{"hostname":"test1","mem":"2048","tags":["ssd","fast"],"zone":"eu"}}`,
				"db3":   `{"containers":{"mysql-database":{}},"properties":{"hostname":"db3"}}`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			format := model.FormatYAML
			if strings.HasPrefix(strings.TrimSpace(tc.rules), "{") {
				format = model.FormatJSON
			}
			rs, err := ParseRules([]byte(tc.rules), format, "/etc/aug/rules.yaml", testOptions())
			if err != nil {
				t.Fatal(err)
			}
			in := testInfra(t)
			before, _ := json.Marshal(in)
			out, err := rs.Apply(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if after, _ := json.Marshal(in); string(after) != string(before) {
				t.Fatalf("Apply modified its input:\n%s\n%s", before, after)
			}
			for target, want := range tc.want {
				got, _ := json.Marshal(out[target])
				if string(got) != want {
					t.Errorf("%s:\ngot  %s\nwant %s", target, got, want)
				}
			}
		})
	}
}

func TestRuleErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		rules, want string
	}{
		{`[]`, "rules.yaml: expected an attribute set {rules: [...]}"},
		{`{}`, "rules.yaml: rules: missing"},
		{`rules: [{set: {properties: {a: 1}}, sett: {}}]`, "rules.yaml: rules[0].sett: unknown attribute: expected one of match, merge, name, remove, set"},
		{`rules: [{match: {target: "["}, set: {properties: {a: 1}}}]`, `rules[0].match.target: invalid glob "["`},
		{`rules: [{match: {}}]`, "rules[0]: rule changes nothing"},
		{`rules: [{match: {properties: {a: {in: 1}}}, set: {properties: {a: 1}}}]`, "rules[0].match.properties.a.in: expected a list"},
		{`rules: [{match: {properties: {a: {in: [1], glob: x}}}, set: {properties: {a: 1}}}]`, "rules[0].match.properties.a: expected exactly one operator"},
		{`rules: [{set: {properties: {a: {$env: NOPE}}}}]`, "rules[0].set.properties.a: environment variable NOPE is not set"},
		{`rules: [{set: {properties: {a: {$file: nope.txt}}}}]`, "rules[0].set.properties.a: read secret /etc/aug/nope.txt"},
		{`rules: [{set: {properties: {a: {$env: X, $file: y}}}}]`, "expected exactly one of $env, $file or $value"},
		{`rules: [{set: {properties: {a: {$env: BAD, $as: int}}}}]`, "environment variable BAD does not hold an integer"},
		{`rules: [{set: {properties: {a: {$env: BAD, $as: json}}}}]`, "environment variable BAD does not hold valid JSON"},
		{`rules: [{set: {properties: {a: {$env: BAD, $as: float}}}}]`, "$as: expected string, int, bool or json"},
		{`rules: [{set: {properties: {a: {$envv: BAD}}}}]`, "a.$envv: unknown attribute"},
		{`rules: [{set: {attributes: {properties: {}}}}]`, "properties is not an attribute"},
		{`rules: [{set: {containers: [a]}}]`, "rules[0].set.containers: expected an attribute set of containers"},
		{`version: 2
rules: []`, "version: unsupported rule file version"},
		{`rules: [{set: {properties: {p: {$env: DB_PASSWORD, $secret: "yes"}}}}]`, "rules[0].set.properties.p.$secret: expected true or false"},
	}
	for _, tc := range cases {
		_, err := ParseRules([]byte(tc.rules), model.FormatYAML, "/etc/aug/rules.yaml", testOptions())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\nerror %v\nwant  %q", tc.rules, err, tc.want)
			continue
		}
		for _, secret := range []string{"hunter2", "s3cret"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error message leaks a secret: %v", tc.rules, err)
			}
		}
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/pw", []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/rules.json", []byte(`{"rules": [{"set": {"properties": {"pw": {"$file": "pw"}}}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Load(dir+"/rules.json", Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Apply(context.Background(), testInfra(t))
	if err != nil {
		t.Fatal(err)
	}
	if out["test2"].Properties["pw"] != "pw" {
		t.Fatalf("got %v", out["test2"].Properties)
	}
	if _, err := Load(dir+"/rules.txt", Options{}); err == nil || !strings.Contains(err.Error(), "unknown model file extension") {
		t.Fatalf("got %v", err)
	}
	if _, err := Load(dir+"/none.yaml", Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}
