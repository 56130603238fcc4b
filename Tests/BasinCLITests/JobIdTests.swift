import BasinSweep
import BasinTestSupport
import Foundation
import Testing

@testable import BasinCLI

/// Job ids are what a run directory's results are kept by: a change to how a job is described
/// (a refactor of the job types, a default moved) must not change them, or every existing run
/// would start over. The ids of the example study, pinned.
@Suite struct JobIdTests {
    static let connectivity: [String: String] = [
        "align/lr=0.05,seed=0-seed=1": "9269c9559adf1cce01d7c130a0c48237e29f3a8dbb799fe25d759b894eab35da",
        "align/lr=0.05,seed=0-seed=2": "9c866515ab50413af9c595ab615ea984858dbd7a7146adad97a9da6a8511d8ff",
        "align/lr=0.05,seed=1-seed=2": "f2acfff3d5dd8435689728fdd7ff12b6c6c0733388cf9524828ea7b189a3d4b6",
        "align/lr=0.2,seed=0-seed=1": "025953b9e62ce426473354bb6a3239b1c86d74a18b205d108c9c79a5fe6157fe",
        "align/lr=0.2,seed=0-seed=2": "14db9574b4799579517035ec3a0b55b963cc36a1c49d962c95827adc1e37ecd4",
        "align/lr=0.2,seed=1-seed=2": "a81fe6c12d691ad6f48398ac7e69a3cfa954aa49bf9253f2b40b760febbae5b4",
        "aligned/lr=0.05,seed=0-seed=1": "2583de4c9177cbe48083806c3106d28921f7f70e0fb3ffdee78df311e212b4a2",
        "aligned/lr=0.05,seed=0-seed=2": "6c94a1271cc51622fbdb91379544f87814713078a48f2351cf0e645e9730a9dd",
        "aligned/lr=0.05,seed=1-seed=2": "982fe1083112a97a28e37b13d9343fd6d3881d6b082c4c0efcffb34dc3395f6a",
        "aligned/lr=0.2,seed=0-seed=1": "d8e1916ad21ac79fbc518dc0ee0711f63907bc6822c43a2d5174534fb651ddb3",
        "aligned/lr=0.2,seed=0-seed=2": "36c9201aba2b493a0c8b654077643d37b5ba4cc3371732e190bf8b3dcbd5bcfc",
        "aligned/lr=0.2,seed=1-seed=2": "4911d066f56934270c0237ef596289deb07d39aa13ff87af59dc2f2bb2cf90ff",
        "curve/lr=0.05,seed=0-seed=1": "71adb69244fb795df70df41231a9e633d6c0523d090f2c9d23ca2d35ddd17885",
        "curve/lr=0.05,seed=0-seed=2": "6876f140c1b4d22c2eee624a28f0d88a6ec8c79e883e2357c9921f3dc9a9eb99",
        "curve/lr=0.05,seed=1-seed=2": "3d0ca7519b6b63db6faeecd77c17edd17f940f6c972f4f89acfb29f68b1236bd",
        "curve/lr=0.2,seed=0-seed=1": "360517f7d1c4d282d76b638fcb98bf7aed805c4f8bf36899f6e2a09e5e422d59",
        "curve/lr=0.2,seed=0-seed=2": "b0dc7ff3a625afff37fac9a72e8bbc2fe55521301805f8d6b54e96291deed661",
        "curve/lr=0.2,seed=1-seed=2": "51a40bc169350ea6d2d7a9e8b902e0c973228641028f55c5c38a94b9934ff941",
        "fit/lr=0.05,seed=0-seed=1": "63b6485505ce109a04edbd74e2777502b312cf00ef27f42b4782e2706f6c30b8",
        "fit/lr=0.05,seed=0-seed=2": "71002dcb49b9ebb0087509896eb298b3680293f6ac1321111bab42f550246587",
        "fit/lr=0.05,seed=1-seed=2": "b87dc716ae041e6ea87c366ac4927fdb95d511ce203674b502278848762b754d",
        "fit/lr=0.2,seed=0-seed=1": "83440e187012471f7255ea7c6103f0c273782481c27843534bab67042b9e0749",
        "fit/lr=0.2,seed=0-seed=2": "7ad0a6bb45617aa197bbd1bec0269d7e79bb26f0c86f52cc503086988d5075f0",
        "fit/lr=0.2,seed=1-seed=2": "383207a57e3863f229060bc05d3d0b4fef11cdb5144060f57772c7c99a5e786c",
        "hessian/lr=0.05,seed=0": "21ee07900ada5591b97007172e347a0347d12375a15f9028df8ffec9bd43647e",
        "hessian/lr=0.05,seed=1": "1fbfd8a973dbab83056fcc2e6dc427cdaed8b60f6ec8c6776d705ca393b3ad93",
        "hessian/lr=0.05,seed=2": "507e08e9a5ae92b056583c2b64f4ac8111cc9c6b1a1c632c899fb2c1a3b81bbb",
        "hessian/lr=0.2,seed=0": "b4e0ccfb3191119d31621022177cd9cd783bb0e36c05b3fc19588e3fcba12e3c",
        "hessian/lr=0.2,seed=1": "0f02287b3e745c68165d1fc2e301c6838e59fd74c5238852a189dbb4f872e3f0",
        "hessian/lr=0.2,seed=2": "45b2fc1b56d0865f7c404edd18d7fdf50bcf134ef06239667397236e4a9226e7",
        "line/lr=0.05,seed=0-seed=1": "a15b805d2a702371fc9a96b3032b47986394538d69f6ee98817ec4151b6b7bef",
        "line/lr=0.05,seed=0-seed=2": "6e2eb02f77d5ac74eaf6db77cf8a43a33b83f927db3e8946ce64ff484642ba98",
        "line/lr=0.05,seed=1-seed=2": "73858eda1b4e9153f5d7872b5d1dbbb68337b363f52c81a1600bb97bb6d1f8eb",
        "line/lr=0.2,seed=0-seed=1": "dfa8640b3a70f4d3ba3858fdc1f972c13a85743caf9608eb84329543de5d4eec",
        "line/lr=0.2,seed=0-seed=2": "5e3d6df35133feef85ba692c2bdc679325ccbc703d073ea329896f078c23de29",
        "line/lr=0.2,seed=1-seed=2": "a73126e7aad14a9367719ccc781f7532a015a159ddbd68df14c2c18dd32757b3",
        "surface/lr=0.05,seed=0": "cf5c2c245c9f05fd9998203e05b1bb3438894c98cb77f030754cb64c9fa76782",
        "surface/lr=0.05,seed=1": "a53dc9ec9e0aef07be15c58e778d0f6a545331556c19e537be7eb1b4f568042b",
        "surface/lr=0.05,seed=2": "199ecf4546e6cc104a88c72571a4a783d2c7e1ba5c62d4f90a4644d2674d2735",
        "surface/lr=0.2,seed=0": "44f9c12b18bdb3070883290202c9f353da1300c2c00cd778c8c2728c25149bfb",
        "surface/lr=0.2,seed=1": "bdf3ff3fbdd6e38a12ce24d70bd84d7a4374318e494ffb14edb48bc38ab6bf2b",
        "surface/lr=0.2,seed=2": "cc8c04d56dd64d6a723b8ee535918a05494f7c849f78bef56bca9f90c17bdade",
        "train/lr=0.05,seed=0": "578c5942a2700b6b34e762274b4fa8db00cd0dcd4048077d59e521af7b04f0f6",
        "train/lr=0.05,seed=1": "b1c4c9d19ef870f013eea442fc8fe5975540087caea18c4e81c2f555c42f93fd",
        "train/lr=0.05,seed=2": "7b3dc42b61f57e376901ae8b9ca9b4df9f27b62701ba5324c70bfed67aab6aa8",
        "train/lr=0.2,seed=0": "eb80a4bcd2b9f80b222a062992602990f8d4b17ed9f81e466d222d659e839db8",
        "train/lr=0.2,seed=1": "1ceff1fa90f25af507329429c86831cb92044d89fa6b6f49edd4d38b849c1268",
        "train/lr=0.2,seed=2": "b3b12f2d475fce403793358d553cd56e26d935f4fa3ffcecb83206cacec35d69",
    ]

    @Test func theExampleStudysJobIdsAreStable() throws {
        let directory = TestSupport.temporaryDirectory("basin-ids")
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = try #require(Examples.all["connectivity"])
        let spec = try SpecFile.decode(StudySpec.self, from: text, source: "connectivity.yaml")
        let study = try Study(spec: spec, executor: Executor(spec: spec, base: directory))
        let ids = Dictionary(uniqueKeysWithValues: study.jobs.map { ($0.name, $0.id) })
        let listing = ids.keys.sorted().map { "\"\($0)\": \"\(ids[$0] ?? "")\"," }.joined(separator: "\n")
        #expect(ids == Self.connectivity, "ids now:\n\(listing)")
        // Every kind a study expands to is among them.
        #expect(Set(study.jobs.map(\.definition.kind.rawValue)).isSuperset(of: ["train", "align", "fit", "curve", "interpolate", "surface", "hessian"]), "\(Set(study.jobs.map(\.definition.kind.rawValue)))")
    }
}
