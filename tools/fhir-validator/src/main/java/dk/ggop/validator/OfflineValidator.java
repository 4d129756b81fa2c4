package dk.ggop.validator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.ConceptValidationOptions;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.context.support.ValidationSupportContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationOptions;
import ca.uhn.fhir.validation.ValidationResult;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import ca.uhn.hapi.converters.canonical.VersionCanonicalizer;
import org.hl7.fhir.common.hapi.validation.support.BaseValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.CanonicalType;
import org.hl7.fhir.r4.model.CodeSystem;
import org.hl7.fhir.r4.model.ValueSet;

/**
 * HAPI FHIR R4 instance validator wired for offline use: R4 core from the classpath, the
 * conformance resources of local FHIR package folders, in-memory terminology only.
 */
final class OfflineValidator {

  /** Resource types taken from a package folder; everything else there is ignored. */
  static final Set<String> LOADED_TYPES =
      Set.of("StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter");

  private final FhirContext ctx = FhirContext.forR4();
  private final ObjectMapper mapper = new ObjectMapper();
  private final PrePopulatedValidationSupport packages = new PrePopulatedValidationSupport(ctx);
  private final List<String> packageNames = new ArrayList<>();
  private final Map<String, Integer> loadedCounts = new TreeMap<>();
  private final List<String> problems = new ArrayList<>();
  private final Map<String, String> canonicalOwner = new LinkedHashMap<>();
  private final Map<String, List<Owned<CodeSystem>>> codeSystems = new LinkedHashMap<>();
  private FhirValidator validator;

  /** A conformance resource and the package it came from. */
  private static final class Owned<T> {
    final String owner;
    final T resource;

    Owned(String owner, T resource) {
      this.owner = owner;
      this.resource = resource;
    }
  }

  /** Loads {@code DIR/package/*.json} (not the example/ or other/ subfolders). */
  void loadPackage(Path dir) throws IOException {
    Path content = dir.resolve("package");
    if (!Files.isDirectory(content)) {
      throw new IOException("not a FHIR package folder (no package/ subfolder): " + dir);
    }
    String name = packageName(dir, content);
    packageNames.add(name);
    IParser parser = ctx.newJsonParser();
    List<Path> files = new ArrayList<>();
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(content, "*.json")) {
      for (Path p : ds) {
        String fn = p.getFileName().toString();
        if (Files.isRegularFile(p) && !fn.equals("package.json") && !fn.startsWith(".")) {
          files.add(p);
        }
      }
    }
    files.sort(null);
    for (Path p : files) {
      String text = Files.readString(p, StandardCharsets.UTF_8);
      String type;
      String url;
      try {
        JsonNode tree = mapper.readTree(text);
        type = tree.path("resourceType").asText("");
        url = tree.path("url").asText("");
      } catch (IOException e) {
        problems.add(name + "/" + p.getFileName() + ": not JSON: " + e.getMessage());
        continue;
      }
      if (!LOADED_TYPES.contains(type)) {
        continue;
      }
      try {
        IBaseResource res = parser.parseResource(text);
        loadedCounts.merge(type, 1, Integer::sum);
        if (res instanceof CodeSystem) {
          // kept back until build(): several packages may define the same code system
          codeSystems.computeIfAbsent(url, k -> new ArrayList<>()).add(new Owned<>(name, (CodeSystem) res));
          continue;
        }
        packages.addResource(res);
        String key = type + " " + url;
        String previous = canonicalOwner.put(key, name);
        if (previous != null) {
          problems.add(
              "duplicate canonical " + key + " in " + previous + " and " + name
                  + " (the one loaded last, from " + name + ", is used)");
        }
      } catch (RuntimeException e) {
        problems.add(name + "/" + p.getFileName() + ": not loaded: " + e.getMessage());
      }
    }
  }

  private String packageName(Path dir, Path content) {
    Path pj = content.resolve("package.json");
    if (Files.isRegularFile(pj)) {
      try {
        JsonNode n = mapper.readTree(pj.toFile());
        if (n.hasNonNull("name") && n.hasNonNull("version")) {
          return n.get("name").asText() + "#" + n.get("version").asText();
        }
      } catch (IOException e) {
        problems.add(pj + ": unreadable package.json: " + e.getMessage());
      }
    }
    return dir.getFileName().toString();
  }

  /**
   * Adds the code systems. Where several packages define the same code system URL (the Danish
   * packages define NPU, urn:oid:1.2.208.176.2.1, three times with different codes), one merged
   * CodeSystem with the union of their concepts and content "fragment" is used, so that a code
   * defined by any of them is accepted and a code defined by none gives a warning, not an error.
   */
  private void addCodeSystems() {
    for (Map.Entry<String, List<Owned<CodeSystem>>> e : codeSystems.entrySet()) {
      List<Owned<CodeSystem>> defs = e.getValue();
      if (defs.size() == 1 || e.getKey().isEmpty()) {
        defs.forEach(d -> packages.addCodeSystem(d.resource));
        continue;
      }
      CodeSystem merged = defs.get(0).resource.copy();
      merged.setContent(CodeSystem.CodeSystemContentMode.FRAGMENT);
      merged.setCount(0);
      Set<String> codes = new HashSet<>();
      merged.getConcept().forEach(c -> codes.add(c.getCode()));
      List<String> owners = new ArrayList<>();
      for (Owned<CodeSystem> d : defs) {
        owners.add(d.owner + " (" + d.resource.getContent().toCode() + ", "
            + d.resource.getConcept().size() + " concepts)");
        if (d != defs.get(0)) {
          for (CodeSystem.ConceptDefinitionComponent c : d.resource.getConcept()) {
            if (codes.add(c.getCode())) {
              merged.addConcept(c.copy());
            }
          }
        }
      }
      merged.setCount(merged.getConcept().size());
      packages.addCodeSystem(merged);
      problems.add("CodeSystem " + e.getKey() + " is defined by " + String.join(", ", owners)
          + ": merged into one fragment with " + merged.getConcept().size() + " concepts");
    }
  }

  /** Builds the support chain and the validator; call after all packages are loaded. */
  void build() {
    addCodeSystems();
    UnknownCodeSystemWarningValidationSupport unknownCodeSystems =
        new UnknownCodeSystemWarningValidationSupport(ctx);
    unknownCodeSystems.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);

    InMemoryTerminologyServerValidationSupport inMemory =
        new InMemoryTerminologyServerValidationSupport(ctx);
    ValidationSupportChain.CacheConfiguration cache =
        ValidationSupportChain.CacheConfiguration.defaultValues()
            .setCacheTimeout(Duration.ofDays(365))
            .setCacheSize(100_000);
    ValidationSupportChain chain =
        new ValidationSupportChain(
            cache,
            new DefaultProfileValidationSupport(ctx),
            packages,
            new CommonCodeSystemsTerminologyService(ctx),
            new NotAvailableOfflineSupport(ctx, inMemory),
            inMemory,
            new SnapshotGeneratingValidationSupport(ctx),
            // last in the chain: a code system nobody knows gives a warning, not an error
            unknownCodeSystems);

    FhirInstanceValidator module = new FhirInstanceValidator(chain);
    module.setAnyExtensionsAllowed(true);
    module.setErrorForUnknownProfiles(true);
    module.setNoTerminologyChecks(false);
    module.setAssumeValidRestReferences(true);

    validator = ctx.newValidator();
    validator.setValidateAgainstStandardSchema(false);
    validator.setValidateAgainstStandardSchematron(false);
    validator.registerValidatorModule(module);
  }

  /** Validates one resource given as FHIR JSON text; the validator parses it itself. */
  List<Map<String, Object>> validate(String resourceJson, List<String> extraProfiles) {
    ValidationOptions options = new ValidationOptions();
    for (String profile : extraProfiles) {
      options.addProfileIfNotBlank(profile);
    }
    ValidationResult result = validator.validateWithResult(resourceJson, options);
    List<Map<String, Object>> issues = new ArrayList<>();
    for (SingleValidationMessage m : result.getMessages()) {
      Map<String, Object> issue = new LinkedHashMap<>();
      issue.put("severity", severity(m));
      issue.put("location", m.getLocationString());
      issue.put("line", positiveOrNull(m.getLocationLine()));
      issue.put("col", positiveOrNull(m.getLocationCol()));
      issue.put("message", m.getMessage());
      issue.put("messageId", m.getMessageId());
      if (m.hasSliceMessages()) {
        issue.put("sliceMessages", m.getSliceMessages());
      }
      issues.add(issue);
    }
    return issues;
  }

  /** HAPI reports line/column 0 for issues that have no place in the resource. */
  private static Integer positiveOrNull(Integer n) {
    return n != null && n > 0 ? n : null;
  }

  private static String severity(SingleValidationMessage m) {
    if (m.getSeverity() == null) {
      return "error";
    }
    switch (m.getSeverity()) {
      case INFORMATION:
        return "information";
      case WARNING:
        return "warning";
      default: // ERROR, FATAL
        return "error";
    }
  }

  List<String> packageNames() {
    return packageNames;
  }

  Map<String, Integer> loadedCounts() {
    return loadedCounts;
  }

  List<String> problems() {
    return problems;
  }

  /**
   * Membership of a code in a ValueSet that takes codes from a code system which is not
   * available offline (unknown, or a content "not-present" stub such as SNOMED CT in R4 core) by
   * filter or as a whole system cannot be decided here. The in-memory terminology service
   * reports that as an error ("Unable to expand ValueSet"); this support asks it first and turns
   * only such undecidable outcomes into a warning. A ValueSet that lists the codes of such a
   * system explicitly is still checked, and a code missing from the list is still an error.
   */
  static final class NotAvailableOfflineSupport extends BaseValidationSupport {
    private final InMemoryTerminologyServerValidationSupport inMemory;
    private final VersionCanonicalizer canonicalizer;

    NotAvailableOfflineSupport(FhirContext ctx, InMemoryTerminologyServerValidationSupport inMemory) {
      super(ctx);
      this.inMemory = inMemory;
      this.canonicalizer = new VersionCanonicalizer(ctx);
    }

    @Override
    public String getName() {
      return "Offline: code systems not available";
    }

    @Override
    public boolean isValueSetSupported(ValidationSupportContext context, String valueSetUrl) {
      return true;
    }

    @Override
    public CodeValidationResult validateCodeInValueSet(
        ValidationSupportContext context,
        ConceptValidationOptions options,
        String system,
        String code,
        String display,
        IBaseResource valueSet) {
      if (system == null || code == null || availableOffline(context, system)) {
        return null; // the rest of the chain decides
      }
      CodeValidationResult result =
          inMemory.validateCodeInValueSet(context, options, system, code, display, valueSet);
      if (result != null && result.isOk()) {
        return result;
      }
      ValueSet vs = canonicalizer.valueSetToCanonical(valueSet);
      if (!undecidable(context, vs, system, 0)) {
        return result;
      }
      return new CodeValidationResult()
          .setCode(code)
          .setSeverity(IssueSeverity.WARNING)
          .setMessage(
              "Code " + system + "#" + code + " was not checked against ValueSet " + vs.getUrl()
                  + ": that code system is not available offline");
    }

    private static boolean availableOffline(ValidationSupportContext context, String system) {
      IBaseResource cs = context.getRootValidationSupport().fetchCodeSystem(system);
      if (cs == null) {
        return false;
      }
      if (cs instanceof CodeSystem) {
        CodeSystem.CodeSystemContentMode mode = ((CodeSystem) cs).getContent();
        return mode != CodeSystem.CodeSystemContentMode.NOTPRESENT;
      }
      return true;
    }

    /** Whether the ValueSet takes codes of {@code system} by filter or as the whole system. */
    private boolean undecidable(ValidationSupportContext context, ValueSet vs, String system, int depth) {
      if (depth > 8) {
        return true;
      }
      for (ValueSet.ConceptSetComponent include : vs.getCompose().getInclude()) {
        if (system.equals(include.getSystem()) && (include.hasFilter() || !include.hasConcept())) {
          return true;
        }
        for (CanonicalType imported : include.getValueSet()) {
          IBaseResource other = context.getRootValidationSupport().fetchValueSet(imported.getValue());
          if (other == null
              || undecidable(context, canonicalizer.valueSetToCanonical(other), system, depth + 1)) {
            return true;
          }
        }
      }
      return false;
    }
  }
}
