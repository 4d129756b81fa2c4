package dk.ggop.validator;

import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.node.NullNode;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.ProxySelector;
import java.net.SocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.hl7.fhir.utilities.http.ManagedWebAccess;

/**
 * JSON lines over stdin/stdout. Request: {"id": ..., "resource": {...}, "profiles": [...]}.
 * Response: {"id": ..., "issues": [...]} or {"id": ..., "error": "..."}. Diagnostics go to
 * stderr; stdout carries protocol lines only.
 */
public final class Main {

  private static final String USAGE =
      "usage: java -jar fhir-validator-all.jar [--package DIR]... [--no-warmup]\n"
          + "  DIR is an npm-style FHIR package folder; DIR/package/*.json are loaded.\n";

  private static final ObjectMapper MAPPER = new ObjectMapper();

  /**
   * Pretty printer whose line structure matches Python's json.dumps(resource, indent=2), so
   * that issue line numbers can be mapped back by clients.
   */
  private static final ObjectWriter RESOURCE_WRITER =
      MAPPER.writer(
          new DefaultPrettyPrinter()
              .withArrayIndenter(new DefaultIndenter("  ", "\n"))
              .withObjectIndenter(new DefaultIndenter("  ", "\n")));

  private Main() {}

  public static void main(String[] args) throws IOException {
    // The protocol owns the real stdout; anything the libraries print goes to stderr.
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
    System.setOut(System.err);
    blockNetwork();

    List<Path> packageDirs = new ArrayList<>();
    boolean warmup = true;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--package":
          if (i + 1 >= args.length) {
            System.err.print(USAGE);
            System.exit(2);
          }
          packageDirs.add(Path.of(args[++i]));
          break;
        case "--no-warmup":
          warmup = false;
          break;
        case "-h":
        case "--help":
          System.err.print(USAGE);
          return;
        default:
          System.err.println("unknown argument: " + args[i]);
          System.err.print(USAGE);
          System.exit(2);
      }
    }

    long mainStart = System.currentTimeMillis();
    long loaded = mainStart;
    OfflineValidator validator = new OfflineValidator();
    try {
      for (Path dir : packageDirs) {
        validator.loadPackage(dir);
      }
      validator.build();
      loaded = System.currentTimeMillis();
      if (warmup) {
        warmUp(validator);
      }
    } catch (IOException | RuntimeException e) {
      Map<String, Object> fail = new LinkedHashMap<>();
      fail.put("ready", false);
      fail.put("error", String.valueOf(e));
      writeLine(out, fail);
      e.printStackTrace();
      System.exit(1);
    }
    for (String problem : validator.problems()) {
      System.err.println("[fhir-validator] " + problem);
    }

    Map<String, Object> ready = new LinkedHashMap<>();
    ready.put("ready", true);
    ready.put(
        "startupMillis",
        System.currentTimeMillis() - ManagementFactory.getRuntimeMXBean().getStartTime());
    long jvmStart = ManagementFactory.getRuntimeMXBean().getStartTime();
    ready.put("jvmMillis", mainStart - jvmStart);
    ready.put("loadMillis", loaded - mainStart);
    ready.put("warmupMillis", System.currentTimeMillis() - loaded);
    ready.put("packages", validator.packageNames());
    ready.put("loaded", validator.loadedCounts());
    ready.put("problems", validator.problems());
    ready.put("hapiVersion", hapiVersion());
    writeLine(out, ready);

    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      writeLine(out, handle(validator, line));
    }
  }

  private static Map<String, Object> handle(OfflineValidator validator, String line) {
    Map<String, Object> response = new LinkedHashMap<>();
    JsonNode request;
    try {
      request = MAPPER.readTree(line);
    } catch (IOException | RuntimeException e) {
      response.put("id", null);
      response.put("error", "malformed request line: " + oneLine(e.getMessage()));
      return response;
    }
    if (request == null || !request.isObject()) {
      response.put("id", null);
      response.put("error", "request must be a JSON object");
      return response;
    }
    JsonNode id = request.has("id") ? request.get("id") : NullNode.getInstance();
    response.put("id", id);
    try {
      JsonNode resource = request.get("resource");
      if (resource == null || !resource.isObject()) {
        response.put("error", "request has no \"resource\" object");
        return response;
      }
      List<String> profiles = new ArrayList<>();
      JsonNode p = request.get("profiles");
      if (p != null && !p.isNull()) {
        if (!p.isArray()) {
          response.put("error", "\"profiles\" must be an array of canonical URLs");
          return response;
        }
        for (JsonNode item : p) {
          if (!item.isTextual()) {
            response.put("error", "\"profiles\" must be an array of canonical URLs");
            return response;
          }
          profiles.add(item.asText());
        }
      }
      long start = System.nanoTime();
      List<Map<String, Object>> issues =
          validator.validate(RESOURCE_WRITER.writeValueAsString(resource), profiles);
      response.put("issues", issues);
      response.put("millis", (System.nanoTime() - start) / 1_000_000);
    } catch (Throwable e) { // one bad request must never end the process
      response.remove("issues");
      response.put("error", e.getClass().getSimpleName() + ": " + oneLine(e.getMessage()));
      e.printStackTrace();
      if (e instanceof VirtualMachineError && !(e instanceof StackOverflowError)) {
        System.gc();
      }
    }
    return response;
  }

  private static void warmUp(OfflineValidator validator) {
    String patient =
        "{\"resourceType\":\"Patient\",\"id\":\"warmup\",\"gender\":\"female\","
            + "\"birthDate\":\"1970-01-01\",\"name\":[{\"family\":\"Warm\",\"given\":[\"Up\"]}],"
            + "\"identifier\":[{\"system\":\"urn:oid:1.2.208.176.1.2\",\"value\":\"0101700000\"}]}";
    String bundle =
        "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"fullUrl\":"
            + "\"urn:uuid:0b7b9a8e-3c1a-4a57-9c1e-1f0e0f6b2a11\",\"resource\":"
            + patient
            + ",\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}]}";
    validator.validate(patient, List.of());
    validator.validate(bundle, List.of());
  }

  private static void writeLine(PrintStream out, Object value) {
    try {
      out.print(MAPPER.writeValueAsString(value));
    } catch (IOException e) {
      out.print("{\"id\":null,\"error\":\"could not serialise response\"}");
    }
    out.print('\n');
    out.flush();
  }

  private static String hapiVersion() {
    Properties props = new Properties();
    try (InputStream in = Main.class.getResourceAsStream("/fhir-validator-version.properties")) {
      if (in != null) {
        props.load(in);
      }
    } catch (IOException e) {
      // not fatal: the version is informational
    }
    return props.getProperty("hapi.version", "unknown");
  }

  private static String oneLine(String s) {
    return s == null ? "" : s.replace('\n', ' ').replace('\r', ' ');
  }

  /**
   * No network, ever: the FHIR core library's web access is prohibited, and any other HTTP or
   * socket connection is routed to a dead local proxy (and reported on stderr).
   */
  private static void blockNetwork() {
    ManagedWebAccess.setAccessPolicy(ManagedWebAccess.WebAccessPolicy.PROHIBITED);
    final Proxy dead = new Proxy(Proxy.Type.HTTP, new InetSocketAddress("127.0.0.1", 9));
    ProxySelector.setDefault(
        new ProxySelector() {
          @Override
          public List<Proxy> select(URI uri) {
            System.err.println("[fhir-validator] blocked network access to " + uri);
            return List.of(dead);
          }

          @Override
          public void connectFailed(URI uri, SocketAddress sa, IOException ioe) {}
        });
  }
}
