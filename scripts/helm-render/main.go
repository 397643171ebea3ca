// helm-render renders a Helm 3 chart the way `helm template` does, for the parts of Helm that
// deploy/helm/lockbox uses, with Helm's own template pieces (Go's text/template, sprig's
// functions, YAML through gopkg.in/yaml.v2 as sigs.k8s.io/yaml does). No helm binary can be
// installed where this project is built (no network beyond npm and Debian), so the chart's tests
// and scripts/render-manifests.sh run this instead; the chart stays plain Helm 3 (apiVersion v2)
// and renders the same with the real helm.
//
// What it implements, each as pkg/engine and pkg/chartutil do:
//  1. Values: values.yaml, then each -f file, then each --set a.b=c,d=e (typed and escaped as
//     --set does, no list indexes), merged key by key (a map merges into a map; anything else
//     replaces).
//  2. .Release.Name/.Namespace/.Service/.IsInstall, .Chart.Name/.Version/.AppVersion (Chart.yaml).
//  3. Functions: sprig's text functions without env/expandenv, toYaml (keys sorted, trailing
//     newline cut), toJson, fromYaml, include, tpl, required.
//  4. missingkey=zero and "<no value>" printed as nothing, as Helm's non-strict mode.
//  5. Templates: every templates/*.tpl and *.yaml parsed together (so defines are shared); each
//     templates/*.yaml rendered in name order.
//  6. Output as helm template prints it: each document (files split as SplitManifests splits
//     them, blank ones left out) as "---\n# Source: <chart>/templates/<file>\n<text>\n", sorted
//     by kind in Helm's install order (releaseutil's kind sorter).
//
// Usage: helm-render [--namespace NS] [-f values.yaml]... [--set k=v]... RELEASE CHART_DIR
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

// documentSeparator is Helm's releaseutil.SplitManifests separator.
var documentSeparator = regexp.MustCompile("(?:^|\\s*\n)---\\s*")

type stringList []string

func (s *stringList) add(v string) { *s = append(*s, v) }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "helm-render:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	namespace := "default"
	var files, sets, positional stringList
	for i := 0; i < len(args); i++ {
		flag := args[i]
		takesValue := flag == "--namespace" || flag == "-n" || flag == "-f" || flag == "--values" || flag == "--set"
		if !takesValue {
			positional.add(flag)
			continue
		}
		if i+1 >= len(args) {
			return fmt.Errorf("%s needs a value", flag)
		}
		i++
		switch flag {
		case "--namespace", "-n":
			namespace = args[i]
		case "-f", "--values":
			files.add(args[i])
		case "--set":
			sets.add(args[i])
		}
	}
	if len(positional) != 2 {
		return errors.New("usage: helm-render [--namespace NS] [-f values.yaml]... [--set k=v]... RELEASE CHART_DIR")
	}
	out, err := render(positional[0], namespace, positional[1], files, sets)
	if err != nil {
		return err
	}
	_, err = os.Stdout.WriteString(out)
	return err
}

// readYAML reads a YAML mapping with string keys all the way down, as values are after Helm's
// YAML-to-JSON step.
func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseYAMLMap(data, path)
}

func parseYAMLMap(data []byte, what string) (map[string]interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := stringKeys(raw).(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a mapping", what)
	}
	return m, nil
}

func stringKeys(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[fmt.Sprint(k)] = stringKeys(val)
		}
		return m
	case []interface{}:
		for i := range t {
			t[i] = stringKeys(t[i])
		}
		return t
	}
	return v
}

// merge lays override over base (step 1).
func merge(base, override map[string]interface{}) map[string]interface{} {
	for k, v := range override {
		if bm, ok := base[k].(map[string]interface{}); ok {
			if om, ok := v.(map[string]interface{}); ok {
				base[k] = merge(bm, om)
				continue
			}
		}
		base[k] = v
	}
	return base
}

// setValues applies one --set argument as Helm's strvals does (step 1): assignments split on
// commas, a backslash takes the next character as it is (a\,b is one value), values typed as
// typedVal types them (true/false/null in any case, "0", and ints not starting with 0). List
// indexes (a[0]=x) are not implemented and stop the render.
func setValues(values map[string]interface{}, arg string) error {
	var key, value strings.Builder
	inValue := false
	apply := func() error {
		if !inValue {
			return fmt.Errorf("--set %q: key %q has no value", arg, key.String())
		}
		if strings.ContainsAny(key.String(), "[]") {
			return fmt.Errorf("--set %q: list indexes are not implemented", arg)
		}
		setValue(values, strings.Split(key.String(), "."), typedValue(value.String()))
		key.Reset()
		value.Reset()
		inValue = false
		return nil
	}
	runes := []rune(arg)
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		switch {
		case r == '\\' && i+1 < len(runes):
			i++
			if inValue {
				value.WriteRune(runes[i])
			} else {
				key.WriteRune(runes[i])
			}
		case r == '=' && !inValue:
			inValue = true
		case r == ',' && inValue:
			if err := apply(); err != nil {
				return err
			}
		case inValue:
			value.WriteRune(r)
		default:
			key.WriteRune(r)
		}
	}
	return apply()
}

func typedValue(raw string) interface{} {
	switch {
	case strings.EqualFold(raw, "true"):
		return true
	case strings.EqualFold(raw, "false"):
		return false
	case strings.EqualFold(raw, "null"):
		return nil
	case raw == "0":
		return int64(0)
	}
	if raw != "" && raw[0] != '0' {
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return n
		}
	}
	return raw
}

func setValue(values map[string]interface{}, path []string, value interface{}) {
	m := values
	for _, key := range path[:len(path)-1] {
		next, ok := m[key].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[key] = next
		}
		m = next
	}
	m[path[len(path)-1]] = value
}

func toYAML(v interface{}) string {
	// sigs.k8s.io/yaml goes through JSON, which sorts keys; yaml.v2 sorts map keys too.
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromYAML(s string) map[string]interface{} {
	m, err := parseYAMLMap([]byte(s), "fromYaml")
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func render(release, namespace, chartDir string, files, sets []string) (string, error) {
	chart, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	if chart["apiVersion"] != "v2" {
		return "", fmt.Errorf("%s: apiVersion %v, expected v2 (Helm 3)", filepath.Join(chartDir, "Chart.yaml"), chart["apiVersion"])
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		override, err := readYAML(f)
		if err != nil {
			return "", err
		}
		values = merge(values, override)
	}
	for _, s := range sets {
		if err := setValues(values, s); err != nil {
			return "", err
		}
	}
	chartName := fmt.Sprint(chart["name"])
	top := map[string]interface{}{
		"Values":  values,
		"Release": map[string]interface{}{"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart":   map[string]interface{}{"Name": chartName, "Version": chart["version"], "AppVersion": chart["appVersion"]},
	}

	// (3) sprig without env/expandenv, plus Helm's own; include/tpl/required bound to this template set.
	root := template.New(chartName).Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["toJson"] = toJSON
	funcs["fromYaml"] = fromYAML
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(message string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(message)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(message)
		}
		return v, nil
	}
	root.Funcs(funcs)

	// (5) every template file parsed into one set, keyed by its path as Helm names them.
	templateDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(templateDir)
	if err != nil {
		return "", err
	}
	var manifests []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".tpl")) {
			continue
		}
		text, err := os.ReadFile(filepath.Join(templateDir, name))
		if err != nil {
			return "", err
		}
		full := chartName + "/templates/" + name
		if _, err := root.New(full).Parse(string(text)); err != nil {
			return "", err
		}
		if strings.HasSuffix(name, ".yaml") {
			manifests = append(manifests, full)
		}
	}
	sort.Strings(manifests)

	var docs []document
	for _, name := range manifests {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, top); err != nil {
			return "", err
		}
		// (4) Helm's non-strict mode prints a missing value as nothing.
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		// (6) A file of several documents is split as SplitManifests does.
		for _, doc := range documentSeparator.Split(text, -1) {
			if doc = strings.TrimSpace(doc); doc != "" {
				var head struct {
					Kind string `yaml:"kind"`
				}
				if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
					return "", fmt.Errorf("YAML parse error on %s: %v", name, err)
				}
				docs = append(docs, document{source: name, kind: head.Kind, text: doc})
			}
		}
	}
	sortByInstallOrder(docs)
	var out strings.Builder
	for _, d := range docs {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", d.source, d.text)
	}
	return out.String(), nil
}

type document struct{ source, kind, text string }

// installOrder is Helm's releaseutil.InstallOrder: the kinds in the order helm installs (and
// helm template prints) them.
var installOrder = []string{
	"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy", "PodDisruptionBudget",
	"ServiceAccount", "Secret", "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList",
	"Role", "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
	"ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "Ingress", "APIService",
}

// sortByInstallOrder orders documents as Helm's kind sorter does (step 6): known kinds by
// installOrder, unknown kinds after them alphabetically, one kind by source file; documents of
// one file keep their order.
func sortByInstallOrder(docs []document) {
	rank := make(map[string]int, len(installOrder))
	for i, kind := range installOrder {
		rank[kind] = i
	}
	sort.SliceStable(docs, func(i, j int) bool {
		a, b := docs[i], docs[j]
		ra, aKnown := rank[a.kind]
		rb, bKnown := rank[b.kind]
		switch {
		case aKnown && bKnown && ra != rb:
			return ra < rb
		case aKnown != bKnown:
			return aKnown
		case !aKnown && a.kind != b.kind:
			return a.kind < b.kind
		}
		return a.source < b.source
	})
}
